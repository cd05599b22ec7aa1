"""A training run: validate everything, make the run directory, start the actors, drive the loop."""
from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from promedical.deploy.config import Config, dump_config
from promedical.errors import UserError

DATA_DIR = Path(__file__).resolve().parent.parent / "data"


def prompts_path(spec: str) -> Path:
    if spec.startswith("builtin:"):
        name = spec.split(":", 1)[1]
        path = DATA_DIR / f"{name}.jsonl"
        if not path.is_file():
            shipped = ", ".join(sorted(f"builtin:{p.stem}" for p in DATA_DIR.glob("*.jsonl")))
            raise UserError(f"data.prompts={spec!r}: no shipped prompt set of that name; choose {shipped}")
        return path
    path = Path(spec).expanduser()
    if not path.is_file():
        raise UserError(f"data.prompts={spec!r}: file not found; give a rubric JSONL file or builtin:medical")
    return path


def load_prompts(cfg: Config):
    """Validated rubric records of data.prompts; checks they suit the chosen grader."""
    from promedical.reward.rubric_io import load_records

    path = prompts_path(cfg.data.prompts)
    records = load_records(path)
    if cfg.reward.grader == "rule":
        for rec in records:
            for c in rec.criteria:
                if c.pattern is None:
                    raise UserError(f"{path}: criterion {rec.prompt_id}/{c.id} has no pattern, which "
                                    f"reward.grader=rule needs; use reward.grader=similarity or trained")
    return records


def default_run_dir(cfg: Config) -> Path:
    return Path("runs") / f"{cfg.preset or 'run'}-{datetime.now():%Y%m%d-%H%M%S}"


class Progress:
    """One line per step on stderr: step, reward, KL, tokens/s and step time."""

    def __init__(self, total: int, stream=sys.stderr) -> None:
        self.total = total
        self.stream = stream
        self.start = time.perf_counter()

    def __call__(self, m: dict[str, Any]) -> None:
        self.stream.write(
            f"step {m['step'] + 1}/{self.total}  reward {m['reward_mean']:+.3f} (sd {m['reward_std']:.3f})  "
            f"S1 {m['s1_mean']:.2f} S2 {m['s2_mean']:.2f} S3 {m['s3_mean']:.2f}  KL {m['kl']:.4f}  "
            f"len {m['response_length_mean']:.0f}  {m['tokens_per_s']:.0f} tok/s  {m['time_step']:.1f}s\n")
        self.stream.flush()


def _settings(cfg: Config):
    from promedical.rollout.loop import LoopSettings
    return LoopSettings(steps=cfg.rollout.steps, prompts_per_step=cfg.rollout.prompts_per_step,
                        group_size=cfg.rollout.group_size, max_staleness=cfg.rollout.max_staleness,
                        advantage=cfg.algo.advantage, sync_timeout_s=cfg.generator.sync_timeout_s)


def _resume_point(run, checkpoints):
    """The latest complete checkpoint; drops metrics and rollouts written after it (they are redone)."""
    from promedical.storage.metrics_log import read_events
    from promedical.storage.run_dir import atomic_write_bytes
    import msgpack

    latest = checkpoints.latest()
    if latest is None:
        raise UserError(f"{run.root}: no complete checkpoint to resume from; set run.checkpoint_every > 0 "
                        f"in the run's config, or start a new run")
    step = int(latest.name.split("_")[1])
    events, _ = read_events(run.metrics_path)
    kept = b"".join(msgpack.packb(e, use_bin_type=True) for e in events if e["step"] < step and "event" not in e)
    atomic_write_bytes(run.metrics_path, kept)
    for path in run.rollouts_dir.glob("step_*.arrow"):
        if int(path.stem.split("_")[1]) >= step:
            path.unlink()
    return latest


def train(cfg: Config, run_dir: Path, resume: bool = False) -> Path:
    """Run `cfg` to completion in `run_dir` (continuing its latest checkpoint if `resume`)."""
    from promedical.deploy.build import build_roles, resolve_models, start_ray
    from promedical.deploy.placement import release_placement_groups
    from promedical.deploy.sinks import make_sinks
    from promedical.rollout import checkpoint
    from promedical.rollout.loop import LoopState, run_loop
    from promedical.rollout.prompts import PromptSource
    from promedical.storage.checkpoints import Checkpoints
    from promedical.storage.metrics_log import MetricsLog
    from promedical.storage.run_dir import RunDir

    records = load_prompts(cfg)             # bad input fails here, before any actor starts
    policy_path, reward_path = resolve_models(cfg)
    run = RunDir(run_dir)
    checkpoints = Checkpoints(run.checkpoints_dir, keep=cfg.run.keep_checkpoints)
    latest = _resume_point(run, checkpoints) if resume else None
    if not resume:
        run.create(dump_config(cfg))
    start_ray(cfg.run.address)
    roles = build_roles(cfg, policy_path, reward_path)
    source = PromptSource(records, seed=cfg.run.seed, shuffle=cfg.data.shuffle)
    settings = _settings(cfg)
    state = checkpoint.restore(latest, source, roles, settings.sync_timeout_s) if latest else LoopState()
    log = MetricsLog(run.metrics_path)
    sinks = make_sinks(run.root, cfg.run.sinks)
    progress = Progress(cfg.rollout.steps)

    def on_step(step: int, batch, metrics: dict[str, Any]) -> None:
        if cfg.run.save_rollouts:
            run.write_rollouts(step, batch)
        log.append(metrics)
        for sink in sinks:
            sink.write(metrics)
        progress(metrics)

    status = "failed"
    try:
        run_loop(roles, source, settings, state, on_step=on_step, checkpoint_every=cfg.run.checkpoint_every,
                 on_checkpoint=lambda s: checkpoint.save(checkpoints, s, source, roles))
        status = "finished"
    finally:
        # the last event marks the end, so `promedical metrics --follow` knows when to stop
        log.append({"event": "run_end", "status": status, "step": state.step - 1, "policy_version": state.version})
        log.close()
        for sink in sinks:
            sink.close()
        release_placement_groups()
    return run.root
