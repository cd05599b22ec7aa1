"""Per-step metrics from a finished rollout batch, the trainer's report and phase timings. Numpy only."""
from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from promedical.rollout.judge_metrics import judge_metrics


def _finite(column: pa.Array) -> np.ndarray:
    """The column's finite values (a NaN reward is masked out of training and out of these means)."""
    values = column.to_numpy(zero_copy_only=False).astype(np.float64)
    return values[np.isfinite(values)]


def _mean(column: pa.Array) -> float:
    values = _finite(column)
    return float(values.mean()) if values.size else 0.0


def rollout_metrics(batch: pa.RecordBatch) -> dict[str, Any]:
    """Reward and tier statistics, veto rate, lengths and staleness of one trained batch."""
    reward = _finite(batch.column("reward"))
    s3 = batch.column("s3").to_numpy(zero_copy_only=False)
    lengths = batch.column("response_length").to_numpy(zero_copy_only=False)
    staleness = (batch.column("trained_version").to_numpy(zero_copy_only=False)
                 - batch.column("policy_version").to_numpy(zero_copy_only=False))
    advantage = batch.column("advantage").to_numpy(zero_copy_only=False)
    finish = batch.column("finish_reason").to_pylist()
    return {
        "reward_mean": float(reward.mean()) if reward.size else 0.0,
        "reward_std": float(reward.std()) if reward.size else 0.0,
        "s1_mean": _mean(batch.column("s1")),
        "s2_mean": _mean(batch.column("s2")),
        "s3_mean": _mean(batch.column("s3")),
        "veto_rate": float((s3 > 0).mean()),
        "response_length_mean": float(lengths.mean()),
        "response_length_max": float(lengths.max()),
        "truncated_fraction": float(np.mean([f == "length" for f in finish])),
        "zero_advantage_fraction": float(np.mean(advantage == 0.0)),
        "staleness_mean": float(staleness.mean()),
        "staleness_max": float(staleness.max()),
        "staleness_hist": {str(int(k)): int(v) for k, v in zip(*np.unique(staleness, return_counts=True))},
        **judge_metrics(batch),          # reward.grader=judge only
    }


def phase_metrics(phases: dict[str, float], step_seconds: float, generated_tokens: int) -> dict[str, Any]:
    """Time per phase (seconds of work done for this step), idle fraction per role and throughput.

    Phases can overlap in asynchronous runs, so their sum may exceed the step's wall time;
    idle fraction of a role = 1 - its busy time / step wall time (never below 0).
    """
    out: dict[str, Any] = {f"time_{k}": float(v) for k, v in phases.items()}
    out["time_step"] = float(step_seconds)
    busy = {"generator": phases.get("generate", 0.0) + phases.get("sync", 0.0),
            "reward": phases.get("score", 0.0), "reference": phases.get("reference", 0.0),
            "policy": phases.get("train", 0.0) + phases.get("export", 0.0)}
    for role, seconds in busy.items():
        out[f"idle_{role}"] = float(max(0.0, 1.0 - seconds / step_seconds)) if step_seconds > 0 else 0.0
    gen = phases.get("generate", 0.0)
    out["tokens_per_s"] = float(generated_tokens / gen) if gen > 0 else 0.0
    out["step_tokens_per_s"] = float(generated_tokens / step_seconds) if step_seconds > 0 else 0.0
    return out
