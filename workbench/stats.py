"""Review statistics as pure functions: pass rate per round, edit rate per tier, Cohen's and weighted kappa.

Ratings are integer category indices 0..k-1 (for weighted kappa the order is meaningful, e.g. criterion
verdicts reject=0 < edited=1 < accepted as drafted=2). Kappa is undefined when both raters put every item
in one and the same category (expected disagreement 0); it is then NaN, shown as "n/a".
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np

WEIGHTS = ("linear", "quadratic")


def confusion(a: Sequence[int], b: Sequence[int], k: int) -> np.ndarray:
    """(k, k) joint proportions: row = rater A's category, column = rater B's."""
    if len(a) != len(b):
        raise ValueError(f"raters rated {len(a)} and {len(b)} items; kappa needs the same items")
    counts = np.zeros((k, k))
    for x, y in zip(a, b):
        counts[x, y] += 1
    return counts / max(len(a), 1)


def _kappa(observed: np.ndarray, disagreement: np.ndarray) -> float:
    """1 - sum(w * O) / sum(w * E), E = outer product of the raters' marginals."""
    expected = np.outer(observed.sum(1), observed.sum(0))
    denominator = float((disagreement * expected).sum())
    if observed.sum() == 0 or denominator == 0:
        return math.nan
    return 1.0 - float((disagreement * observed).sum()) / denominator


def cohen_kappa(a: Sequence[int], b: Sequence[int], k: int) -> float:
    """Unweighted kappa: (p_o - p_e) / (1 - p_e) over k nominal categories."""
    return _kappa(confusion(a, b, k), 1.0 - np.eye(k))


def weighted_kappa(a: Sequence[int], b: Sequence[int], k: int, weights: str = "linear") -> float:
    """Kappa with disagreement weights |i-j|/(k-1) (linear) or its square (quadratic) for ordinal ratings."""
    if weights not in WEIGHTS:
        raise ValueError(f"weights {weights!r} is not one of {WEIGHTS}")
    i, j = np.indices((k, k))
    w = np.abs(i - j) / max(k - 1, 1)
    return _kappa(confusion(a, b, k), w if weights == "linear" else w ** 2)


def rate_by(groups: Iterable[tuple[object, bool]]) -> dict[object, tuple[int, int, float]]:
    """For (key, hit) pairs: key -> (hits, total, hits / total), keys in first-seen order."""
    hits: dict[object, int] = {}
    totals: dict[object, int] = {}
    for key, hit in groups:
        totals[key] = totals.get(key, 0) + 1
        hits[key] = hits.get(key, 0) + int(bool(hit))
    return {key: (hits[key], n, hits[key] / n) for key, n in totals.items()}


def time_summary(seconds: Sequence[float]) -> tuple[float, float, int]:
    """(median, mean, count) of the seconds spent per item; NaN for no items."""
    if not seconds:
        return math.nan, math.nan, 0
    values = np.asarray(seconds, dtype=float)
    return float(np.median(values)), float(values.mean()), len(values)
