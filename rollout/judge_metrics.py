"""Per-step metrics of an LLM-judge grader, from the reward columns of one batch. Numpy only.

A row's `criterion_errors` is null unless its grader gives verdicts (reward.grader=judge); then each
criterion has "" (valid verdict) or the invalid verdict's error code, and its v is NaN.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa


def judge_metrics(batch: pa.RecordBatch) -> dict[str, float]:
    """verdicts, valid fraction, invalid count by cause, judge seconds and the mean v per tier; {} without a judge."""
    if "criterion_errors" not in batch.schema.names:
        return {}
    errors = batch.column("criterion_errors").to_pylist()
    rows = [k for k, e in enumerate(errors) if e is not None]
    if not rows:
        return {}
    tiers = batch.column("criterion_tiers").to_pylist()
    scores = batch.column("criterion_scores").to_pylist()
    codes = [code for k in rows for code in errors[k]]
    causes = Counter(code for code in codes if code)
    out = {"judge_verdicts": float(len(codes)),
           "judge_valid_fraction": float(1.0 - sum(causes.values()) / len(codes)) if codes else 1.0,
           "judge_invalid": float(sum(causes.values())),
           "judge_seconds": float(np.max(batch.column("score_seconds").to_numpy(zero_copy_only=False)))}
    out.update({f"judge_invalid_{cause}": float(n) for cause, n in sorted(causes.items())})
    by_tier: dict[str, list[float]] = {}
    for k in rows:
        for tier, v, code in zip(tiers[k], scores[k], errors[k]):
            if not code and np.isfinite(v):
                by_tier.setdefault(tier, []).append(v)
    out.update({f"judge_score_{tier}": float(np.mean(v)) for tier, v in sorted(by_tier.items())})
    return out
