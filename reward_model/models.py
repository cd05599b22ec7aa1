"""Reward-model names to local checkpoints; the shipped MiniLM reward models are trained here once, on first use.

    minilm       all-MiniLM-L6-v2 (the similarity grader's encoder, the ECIR backbone)
    minilm-ecir  the criterion-injected MiniLM reward model (recipe: reward_model/ecir.py)
    minilm-agnostic, minilm-ecir-s1   its criterion-agnostic twin and an independent judge (benchmarks)
    PATH         a reward model made by `promedical train-rm`, or any HF checkpoint directory
"""
from __future__ import annotations

from promedical.runtime.models import checkpoint_dir, locked_build, minilm_dir


def resolve_reward_model(name: str) -> str:
    """A local checkpoint directory for reward model `name`, training minilm-ecir once if needed."""
    if name == "minilm":
        return str(minilm_dir())
    from promedical.reward_model.ecir import SHIPPED_MODELS, build_minilm_ecir, ecir_dir
    if name in SHIPPED_MODELS:
        return str(locked_build(ecir_dir(name), lambda out: build_minilm_ecir(
            minilm_dir(), out, SHIPPED_MODELS[name], name=name)))
    return checkpoint_dir(name, ", ".join(("minilm", *SHIPPED_MODELS)))
