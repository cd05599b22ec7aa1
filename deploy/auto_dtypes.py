"""A run's `auto` dtypes made concrete for the devices its roles are placed on, before any actor starts.

The resolved config is what the run directory's config.yaml records: each key holds the chosen dtype,
and `resolved:` says for every key that was `auto` what it became and why (runtime/dtypes.py). The
CPU flags are the driver's; with a remote cluster (run.address) the driver resolves for its own CPU
unless the keys are set explicitly.
"""
from __future__ import annotations

import copy

from promedical.deploy.config import Config
from promedical.deploy.placement import role_resources
from promedical.runtime.dtypes import cpu_flags, resolve_dtype

# config key -> the role whose device decides it (the reference follows model.train_dtype with the policy)
DTYPE_KEYS = {"model.train_dtype": "policy", "reward.dtype": "reward", "generator.dtype": "generator"}


def _cuda_bf16() -> bool | None:
    import torch
    return bool(torch.cuda.is_bf16_supported()) if torch.cuda.is_available() else None


def resolve_auto_dtypes(cfg: Config) -> Config:
    """A copy of `cfg` with no `auto` dtype left and `cfg.resolved` filled; a config without one is returned."""
    todo = [key for key in DTYPE_KEYS if _get(cfg, key) == "auto"]
    if not todo:
        return cfg
    out, flags = copy.deepcopy(cfg), cpu_flags()
    on_gpu = {key: role_resources(cfg.placement, DTYPE_KEYS[key]).num_gpus > 0 for key in todo}
    cuda_bf16 = _cuda_bf16() if any(on_gpu.values()) else None
    for key in todo:
        choice = resolve_dtype("auto", "cuda" if on_gpu[key] else "cpu", flags, cuda_bf16)
        section, name = key.split(".")
        setattr(getattr(out, section), name, choice.dtype)
        out.resolved[key] = f"{choice.dtype} ({choice.reason})"
    return out


def _get(cfg: Config, key: str) -> str:
    section, name = key.split(".")
    return getattr(getattr(cfg, section), name)
