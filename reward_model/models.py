"""Reward-model names to local checkpoints; the shipped MiniLM reward models are made once, on first use:
assembled from their trained part in data/shipped/ when it matches the recipe (reward_model/shipped.py),
else trained here.

    minilm       all-MiniLM-L6-v2 (the similarity grader's encoder, the ECIR backbone)
    minilm-ecir  the criterion-injected MiniLM reward model (recipe: reward_model/ecir.py)
    minilm-agnostic, minilm-ecir-s1   its criterion-agnostic twin and an independent judge (benchmarks)
    PATH         a reward model made by `promedical train-rm`, or any HF checkpoint directory
"""
from __future__ import annotations

from pathlib import Path

from promedical.runtime.models import checkpoint_dir, locked_build, minilm_dir


def resolve_reward_model(name: str) -> str:
    """A local checkpoint directory for reward model `name`, training minilm-ecir once if needed."""
    if name == "minilm":
        return str(minilm_dir())
    from promedical.reward_model.ecir import SHIPPED_MODELS, ecir_dir
    if name in SHIPPED_MODELS:
        return str(locked_build(ecir_dir(name), lambda out: _build_shipped(name, out)))
    return checkpoint_dir(name, ", ".join(("minilm", *SHIPPED_MODELS)))


def _build_shipped(name: str, out: Path) -> None:
    """Assemble `name` from its trained part in data/shipped/ (seconds) when it matches the recipe and pairs,
    else train it (reward_model/ecir.py; minutes)."""
    import shutil
    import sys

    from promedical.reward_model.ecir import SHIPPED_MODELS, build_minilm_ecir, ecir_key
    from promedical.reward_model.shipped import assemble, shipped_file

    part = shipped_file(name, ecir_key(SHIPPED_MODELS[name]))
    if part.is_file():
        if assemble(part, minilm_dir(), out):
            (out / ".assembled").write_text(part.name)
            return
        print(f"{part.name}: the assembled model does not reproduce the build's probe scores; building "
              f"{name} instead", file=sys.stderr)
        shutil.rmtree(out, ignore_errors=True)
    build_minilm_ecir(minilm_dir(), out, SHIPPED_MODELS[name], name=name)
