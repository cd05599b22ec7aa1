"""What `--model PATH_OR_RUN` names: a model name, an HF checkpoint directory, or a run directory.

A run directory (it has config.yaml or checkpoints/) is evaluated at its latest
checkpoints/step_*/policy/ checkpoint; a run without one is evaluated at the base policy of its
config. Results go beside what was named: RUN_DIR/eval/, CHECKPOINT_DIR/eval/, or ./eval/NAME/ for a
model name such as smollm2.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from promedical.actors.models import resolve_model
from promedical.errors import UserError

MODEL_NAMES = ("tiny", "smollm2")
_STEP = re.compile(r"^step_(\d+)$")


@dataclass(frozen=True)
class Target:
    """A policy to evaluate: a short label, its HF checkpoint path, and where its results are saved."""

    label: str
    model_path: str
    results_root: Path
    note: str = ""               # how the target was resolved, shown to the user


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The policy/ directory of the highest step_N under run_dir/checkpoints holding an HF config."""
    found = []
    for step_dir in (run_dir / "checkpoints").glob("step_*"):
        match = _STEP.match(step_dir.name)
        if match and (step_dir / "policy" / "config.json").is_file():
            found.append((int(match.group(1)), step_dir / "policy"))
    return max(found)[1] if found else None


def _run_base_policy(run_dir: Path) -> str:
    import yaml
    try:
        config = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
        return str(config["model"]["policy"])
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        raise UserError(f"{run_dir}: a run directory without checkpoints and without a readable "
                        f"config.yaml model.policy; give --model a checkpoint directory instead") from None


def resolve_target(spec: str) -> Target:
    """The Target that `spec` names; UserError saying what to give otherwise."""
    if spec in MODEL_NAMES:
        return Target(label=spec, model_path=resolve_model(spec), results_root=Path("eval") / spec)
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise UserError(f"--model {spec}: not a model name ({', '.join(MODEL_NAMES)}) nor a directory; "
                        f"give a name, an HF checkpoint directory or a run directory")
    if (path / "config.json").is_file():
        return Target(label=path.resolve().name, model_path=str(path.resolve()), results_root=path / "eval")
    if (path / "config.yaml").is_file() or (path / "checkpoints").is_dir():
        checkpoint = latest_checkpoint(path)
        if checkpoint is not None:
            return Target(label=f"{path.resolve().name}@{checkpoint.parent.name}", model_path=str(checkpoint),
                          results_root=path / "eval", note=f"latest checkpoint {checkpoint}")
        base = _run_base_policy(path)
        return Target(label=f"{path.resolve().name}@base", model_path=resolve_model(base),
                      results_root=path / "eval",
                      note=f"no checkpoints/step_*/policy/ yet: evaluating the run's base policy {base!r}")
    raise UserError(f"--model {spec}: a directory with neither config.json (HF checkpoint) nor "
                    f"config.yaml/checkpoints (run directory); point at one of those")
