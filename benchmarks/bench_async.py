"""Steps/s of synchronous (max_staleness 0) against asynchronous (max_staleness 1) GRPO, with phase timings.

    .venv/bin/python benchmarks/bench_async.py                    # tiny and demo presets
    .venv/bin/python benchmarks/bench_async.py --presets tiny --steps 6
    .venv/bin/python benchmarks/bench_async.py --set generator.omp_threads_bind=0 --set trainer.threads=1

Each preset is trained once per staleness bound in one process and one local Ray session, through
`promedical.deploy.run.train`; steps/s counts the steps after the first (which carries model load and
warm-up) from the metric log's per-step wall times. Prints, per preset, steps/s of both modes, their
ratio (async / sync) and the mean time per phase (generate, score, reference, train, sync, step).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

PHASES = ("time_generate", "time_score", "time_reference", "time_train", "time_sync", "time_step")
STALENESS = (0, 1)
WARMUP_STEPS = 1   # step 0 includes engine warm-up and first compilation; left out of steps/s


def run_once(preset: str, staleness: int, steps: int, root: Path, extra: list[str]) -> dict[str, float]:
    """Train `preset` with rollout.max_staleness=`staleness`; steps/s and mean phase seconds."""
    from promedical.deploy.config import load_config
    from promedical.deploy.run import train
    from promedical.storage.metrics_log import iter_events

    overrides = [*extra, f"rollout.max_staleness={staleness}", "run.save_rollouts=false"]
    if steps:
        overrides.append(f"rollout.steps={steps}")
    cfg = load_config(preset, overrides)
    if cfg.rollout.steps <= WARMUP_STEPS:
        raise SystemExit(f"--steps must be > {WARMUP_STEPS} to leave steps after warm-up")
    run_dir = train(cfg, root / f"{preset}-s{staleness}")
    events = [e for e in iter_events(run_dir / "metrics.msgpack") if "time_step" in e]
    timed = events[WARMUP_STEPS:]
    out = {p: statistics.fmean(float(e.get(p, 0.0)) for e in timed) for p in PHASES}
    out["steps_per_s"] = len(timed) / sum(float(e["time_step"]) for e in timed)
    return out


def report(preset: str, results: dict[int, dict[str, float]]) -> str:
    sync, asyn = results[0], results[1]
    lines = [f"== {preset}: steps/s sync {sync['steps_per_s']:.3f}  async {asyn['steps_per_s']:.3f}  "
             f"ratio async/sync {asyn['steps_per_s'] / sync['steps_per_s']:.2f}",
             f"   {'phase (mean s)':<16}" + "".join(f"{p.removeprefix('time_'):>11}" for p in PHASES)]
    for k in STALENESS:
        lines.append(f"   {f'max_staleness={k}':<16}" + "".join(f"{results[k][p]:>11.3f}" for p in PHASES))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "demo"])
    parser.add_argument("--steps", type=int, default=0, help="steps per run (default: the preset's)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for every run, e.g. --set trainer.threads=1 (repeatable)")
    parser.add_argument("--out", default="", help="keep run directories here (default: a temp dir)")
    args = parser.parse_args(argv)
    import ray

    with tempfile.TemporaryDirectory(prefix="bench-async-") as tmp:
        root = Path(args.out or tmp)
        try:
            for preset in args.presets:
                results = {k: run_once(preset, k, args.steps, root, args.overrides) for k in STALENESS}
                print(report(preset, results), flush=True)
        finally:
            ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
