"""The shipped criterion-injected MiniLM reward model ("minilm-ecir"), built deterministically from
data/pairs_train.jsonl in about 7 CPU minutes on first use (reward_model/models.resolve_reward_model);
its twin, the judge and the unmeasured recipe v5 candidate ("minilm-ecir-v5") are built the same way.

Recipe (ECIR_SPEC): all-MiniLM-L6-v2 with a scalar head, embeddings and the lowest FREEZE layers
frozen, per-criterion Bradley-Terry loss with a pointwise anchor term (rm_train.pair_loss, weight ANCHOR)
on the shuffled training pairs (PAIRS = 0: all of them) for EPOCHS passes, seeded. A
calibration split (CALIBRATION_SPLIT of the training prompts, reward/splits.calibration_split) is kept
out of the gradient steps and only fits the calibration, the veto threshold included; the held-out
pairs (data/pairs_heldout.jsonl) are never used.
"""
from __future__ import annotations

import sys
from pathlib import Path

from promedical.reward_model.rm_train import TrainConfig, train_reward_model
from promedical.reward.rubric_io import load_records
from promedical.runtime.models import cache_root

# v4: all training pairs, two passes (294 steps of 16; v3 took 640 pairs, one pass): held-out veto F1
# 0.463 -> 0.600, bonus pairwise 0.884 -> 0.975 (README "Recipe v4")
ECIR_SPEC = {"pairs": 0, "epochs": 2.0, "lr": 3e-4, "batch_size": 16, "max_length": 176, "freeze": 3,
             "anchor": 0.5, "calibration_points": 800, "calibration_split": 0.15, "criterion": True, "seed": 0,
             "v": 4}
# the judge keeps recipe v3 with its own seed, learning rate and a 640-pair sample, one pass: it trains
# none of the arms and its cached build (and benchmarks/paper_mini's judged figures) stay valid
JUDGE_SPEC = {"pairs": 640, "epochs": 1.0, "lr": 2e-4, "batch_size": 16, "max_length": 176, "freeze": 3,
              "anchor": 0.5, "calibration_points": 800, "calibration_split": 0.15, "criterion": True, "seed": 1,
              "v": 3}
# recipe v5 CANDIDATE (README "Recipe v5 candidate"): v4's fp32 steps on the extended-wordings pairs
# (data/pairs_train_v5.jsonl: more veto phrasings for training; the calibration prompts use wordings no
# step sees, so the veto threshold is fitted on unseen wordings). No bf16 autocast: a named model must
# build the same weights on every CPU, and emulated bf16 is ~40x slower on one without native bf16
V5_SPEC = ECIR_SPEC | {"pairs_file": "pairs_train_v5.jsonl", "v": 5}
# the shipped reward models by name: the demo's grader, its criterion-agnostic twin (the ablation, same
# recipe with the criterion hidden) and an independently seeded, differently recipe'd injected model that
# benchmarks use as a judge that is not the training reward
SHIPPED_MODELS = {
    "minilm-ecir": ECIR_SPEC,
    "minilm-agnostic": ECIR_SPEC | {"criterion": False},
    "minilm-ecir-s1": JUDGE_SPEC,
    "minilm-ecir-v5": V5_SPEC,
}
BUILD_FILE = "promedical_build.json"      # beside the weights: the build's wall seconds, steps and recipe
SHIPPED_PAIRS = Path(__file__).resolve().parent.parent / "data" / "pairs_train.jsonl"


def pairs_path(spec: dict) -> Path:
    """The training pairs of a recipe: data/pairs_train.jsonl unless the spec names another file there."""
    return SHIPPED_PAIRS.with_name(spec.get("pairs_file", SHIPPED_PAIRS.name))


def ecir_config(spec: dict = ECIR_SPEC, threads: int = 0) -> TrainConfig:
    return TrainConfig(use_criterion=spec["criterion"], epochs=spec["epochs"], lr=spec["lr"],
                       batch_size=spec["batch_size"], max_length=spec["max_length"], freeze_layers=spec["freeze"],
                       seed=spec["seed"], max_pairs=spec["pairs"], calibration_points=spec["calibration_points"],
                       calibration_split=spec["calibration_split"], anchor_weight=spec["anchor"], threads=threads,
                       autocast_bf16=spec.get("autocast", False))


def build_minilm_ecir(backbone: str | Path, out: str | Path, spec: dict = ECIR_SPEC, log=None,
                      progress: bool = True, name: str = "minilm-ecir") -> dict:
    """Train the ECIR reward model from the shipped pairs into `out` (deterministic: seeded, deterministic
    torch kernels); a progress bar on stderr unless `progress` is False. Returns the training summary."""
    import torch

    import json
    import time

    torch.use_deterministic_algorithms(True, warn_only=True)
    bar = ProgressBar(f"building reward model {name} (once, cached)") if progress else None
    start = time.perf_counter()
    try:
        summary = train_reward_model(str(backbone), load_records(pairs_path(spec)), out, ecir_config(spec),
                                     log=log or (lambda message: None), on_step=bar)
    finally:
        if bar is not None:
            bar.close()
    record = {k: summary[k] for k in ("pairs", "steps", "calibration_records")} | {
        "seconds": round(time.perf_counter() - start, 1), "recipe": spec}
    (Path(out) / BUILD_FILE).write_text(json.dumps(record, indent=2) + "\n")     # benchmarks report it
    return summary


class ProgressBar:
    """A tqdm bar on stderr, sized on the first step (the step count is known inside training)."""

    def __init__(self, label: str) -> None:
        self.label, self.bar = label, None

    def __call__(self, step: int, steps: int) -> None:
        if self.bar is None:
            from tqdm import tqdm
            self.bar = tqdm(total=steps, desc=self.label, unit="step", file=sys.stderr, dynamic_ncols=True)
        self.bar.update(step - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def ecir_key(spec: dict = ECIR_SPEC) -> str:
    """Cache key: the recipe and the exact shipped pairs, so a change to either rebuilds the model."""
    import hashlib
    import json

    digest = hashlib.sha1(json.dumps(spec, sort_keys=True).encode())
    digest.update(pairs_path(spec).read_bytes())
    return digest.hexdigest()[:10]


def ecir_dir(name: str = "minilm-ecir") -> Path:
    """Where shipped model `name` (its recipe, these pairs) lives in the cache, built or not."""
    return cache_root() / f"{name}-{ecir_key(SHIPPED_MODELS[name])}"
