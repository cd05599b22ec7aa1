"""The shipped criterion-injected MiniLM reward model ("minilm-ecir"), built deterministically from
data/pairs_train.jsonl in a few CPU minutes on first use (reward_model/models.resolve_reward_model).

Recipe (ECIR_SPEC): all-MiniLM-L6-v2 with a scalar head, embeddings and the lowest FREEZE layers
frozen, per-criterion Bradley-Terry loss on the first PAIRS shuffled training pairs, seeded.
"""
from __future__ import annotations

from pathlib import Path

from promedical.reward_model.rm_train import TrainConfig, train_reward_model
from promedical.reward.rubric_io import load_records
from promedical.runtime.models import cache_root

ECIR_SPEC = {"pairs": 640, "epochs": 1.0, "lr": 3e-4, "batch_size": 16, "max_length": 160, "freeze": 3,
             "calibration_points": 256, "seed": 0, "v": 2}
SHIPPED_PAIRS = Path(__file__).resolve().parent.parent / "data" / "pairs_train.jsonl"


def ecir_config(spec: dict = ECIR_SPEC, threads: int = 0) -> TrainConfig:
    return TrainConfig(use_criterion=True, epochs=spec["epochs"], lr=spec["lr"], batch_size=spec["batch_size"],
                       max_length=spec["max_length"], freeze_layers=spec["freeze"], seed=spec["seed"],
                       max_pairs=spec["pairs"], calibration_points=spec["calibration_points"], threads=threads)


def build_minilm_ecir(backbone: str | Path, out: str | Path, spec: dict = ECIR_SPEC, log=print) -> dict:
    """Train the ECIR reward model from the shipped pairs into `out`; returns the training summary."""
    import torch

    torch.use_deterministic_algorithms(True, warn_only=True)
    return train_reward_model(str(backbone), load_records(SHIPPED_PAIRS), out, ecir_config(spec), log=log)


def ecir_key(spec: dict = ECIR_SPEC) -> str:
    """Cache key: the recipe and the exact shipped pairs, so a change to either rebuilds the model."""
    import hashlib
    import json

    digest = hashlib.sha1(json.dumps(spec, sort_keys=True).encode())
    digest.update(SHIPPED_PAIRS.read_bytes())
    return digest.hexdigest()[:10]


def ecir_dir(spec: dict = ECIR_SPEC) -> Path:
    """Where the model of this recipe and these pairs lives in the cache (built or not)."""
    return cache_root() / f"minilm-ecir-{ecir_key(spec)}"
