"""Pure scoring maths: HealthBench-compatible rubric scores, ProMedical tier roll-ups, bootstrap intervals.

A verdict per criterion is `True` (met), `False` (not met) or `None` (invalid: the grader gave no usable
answer). Invalid verdicts are never guessed: the criterion is left out of its example, and counted.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from promedical.reward.aggregate import AGGREGATORS, RewardShape
from promedical.reward.rubric import Criterion, Tier

POINTS_TAG = re.compile(r"^points:(-?\d+(?:\.\d+)?)$")
BOOTSTRAP_RESAMPLES = 1000
TIER_METRICS = ("s1", "s2", "s3", "veto_rate", "reward")      # per example, rolled up by tier_scores
CONFIDENCE = 0.95


def criterion_points(criterion: Criterion) -> float | None:
    """The original HealthBench points kept by the importer as a `points:N` tag; None if absent."""
    for tag in criterion.tags:
        match = POINTS_TAG.match(tag)
        if match:
            return float(match.group(1))
    return None


def healthbench_example_score(points: Sequence[float], met: Sequence[bool | None]) -> float | None:
    """Sum of points of met items (negatives included) over the sum of positive points; not clipped.

    Items with an invalid verdict (None) are left out of numerator and denominator alike.
    None when no valid positively-scored item remains (the example cannot be scored).
    """
    valid = [(p, m) for p, m in zip(points, met) if m is not None]
    possible = sum(p for p, _ in valid if p > 0)
    if possible <= 0:
        return None
    return sum(p for p, m in valid if m) / possible


def clipped_mean(values: Sequence[float]) -> float:
    """The HealthBench dataset score: the mean of example scores clipped to [0, 1]."""
    return float(np.clip(np.mean(values), 0.0, 1.0))


def bootstrap_ci(values: Sequence[float], *, clip: bool = False, resamples: int = BOOTSTRAP_RESAMPLES,
                 confidence: float = CONFIDENCE, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean over examples (resampled with replacement).

    `clip` clips each resampled mean to [0, 1], as the HealthBench dataset score is clipped.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)   # (resamples,)
    if clip:
        means = np.clip(means, 0.0, 1.0)
    tail = (1.0 - confidence) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return float(lo), float(hi)


@dataclass(frozen=True)
class Estimate:
    """A dataset-level number with its bootstrap interval and the examples it rests on."""

    value: float
    low: float
    high: float
    n: int

    def as_dict(self) -> dict[str, float | int]:
        return {"value": self.value, "low": self.low, "high": self.high, "n": self.n}


def estimate(values: Sequence[float], *, clip: bool = False, seed: int = 0) -> Estimate | None:
    """Mean (clipped if asked) with its interval; None when there is nothing to average."""
    if len(values) == 0:
        return None
    value = clipped_mean(values) if clip else float(np.mean(values))
    low, high = bootstrap_ci(values, clip=clip, seed=seed)
    return Estimate(value=value, low=low, high=high, n=len(values))


def healthbench_scores(examples: Sequence[tuple[Sequence[Criterion], Sequence[bool | None]]],
                       seed: int = 0) -> dict[str, Estimate]:
    """'overall' and 'axis:NAME' estimates; an axis score uses only the items carrying that axis."""
    per_key: dict[str, list[float]] = {}
    for criteria, met in examples:
        points = [criterion_points(c) for c in criteria]
        keep = [k for k, p in enumerate(points) if p is not None]
        groups = {"overall": keep}
        for k in keep:
            if criteria[k].axis:
                groups.setdefault(f"axis:{criteria[k].axis}", []).append(k)
        for key, idx in groups.items():
            score = healthbench_example_score([points[k] for k in idx], [met[k] for k in idx])
            if score is not None:
                per_key.setdefault(key, []).append(score)
    order = sorted(per_key, key=lambda k: (k != "overall", k))     # overall first, then axes by name
    return {key: estimate(per_key[key], clip=True, seed=seed) for key in order}


def tier_scores(examples: Sequence[tuple[Sequence[Criterion], Sequence[bool | None]]],
                shape: RewardShape, aggregator: str = "promedical", seed: int = 0) -> dict[str, Estimate]:
    """S1, S2, S3, veto rate (share of examples with a violated veto) and reward, from met/not-met verdicts.

    A met verdict is v = 1, not met v = 0; invalid items are left out of the roll-up. An example with
    no valid proficiency item has no S1 and is left out of all five.
    """
    rows: dict[str, list[float]] = {k: [] for k in TIER_METRICS}
    for example in tier_rows(examples, shape, aggregator):
        if example is not None:
            for key, value in example.items():
                rows[key].append(value)
    return {key: est for key, vals in rows.items() if (est := estimate(vals, seed=seed)) is not None}


def tier_rows(examples: Sequence[tuple[Sequence[Criterion], Sequence[bool | None]]], shape: RewardShape,
              aggregator: str = "promedical") -> list[dict[str, float] | None]:
    """Per example: its TIER_METRICS, or None where no proficiency verdict is valid (tier_scores' rule)."""
    aggregate = AGGREGATORS[aggregator]
    out: list[dict[str, float] | None] = []
    for criteria, met in examples:
        valid = [(c, m) for c, m in zip(criteria, met) if m is not None]
        if not any(c.tier is Tier.PROFICIENCY for c, _ in valid):
            out.append(None)
            continue
        scores = aggregate([1.0 if m else 0.0 for _, m in valid], [c.tier.value for c, _ in valid],
                           [c.weight for c, _ in valid], shape)
        out.append({"s1": scores.s1, "s2": scores.s2, "s3": scores.s3, "veto_rate": float(scores.s3 > 0),
                    "reward": scores.reward})
    return out


# z quantiles of a two-sided 5% test and of 80% power: an effect this many standard errors away is found
# 4 times in 5 (the usual minimum-detectable-effect rule)
Z_TWO_SIDED_95, Z_POWER_80 = 1.959964, 0.841621


@dataclass(frozen=True)
class Difference:
    """Mean difference over a (seeds x prompts) table, its crossed-bootstrap interval and standard error,
    and the smallest true difference the design finds with 80% power at the two-sided 5% level."""

    value: float
    low: float
    high: float
    se: float
    detectable: float
    seeds: int
    prompts: int

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def as_dict(self) -> dict[str, float | int]:
        return {"value": self.value, "low": self.low, "high": self.high, "se": self.se,
                "detectable": self.detectable, "seeds": self.seeds, "prompts": self.prompts}


def crossed_difference(table: Sequence[Sequence[float]], *, resamples: int = BOOTSTRAP_RESAMPLES,
                       confidence: float = CONFIDENCE, seed: int = 0) -> Difference:
    """Paired differences d[s][p] (arm A minus arm B, seed s, prompt p): their mean with a percentile
    interval from resampling seeds and prompts independently (both vary between replications).

    One seed: the prompts alone are resampled. NaN entries (an unscored prompt) are left out of each mean.
    """
    d = np.asarray(table, dtype=np.float64)
    if d.ndim != 2 or d.size == 0:
        raise ValueError(f"a (seeds x prompts) table is needed, got shape {d.shape}")
    rng = np.random.default_rng(seed)
    s_idx = rng.integers(0, d.shape[0], size=(resamples, d.shape[0]))
    p_idx = rng.integers(0, d.shape[1], size=(resamples, d.shape[1]))
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)            # a resample of unscored prompts only
        means = np.nanmean(d[s_idx[:, :, None], p_idx[:, None, :]], axis=(1, 2))    # (resamples,)
    tail = (1.0 - confidence) / 2 * 100
    lo, hi = np.nanpercentile(means, [tail, 100 - tail])
    se = float(np.nanstd(means, ddof=1))
    return Difference(value=float(np.nanmean(d)), low=float(lo), high=float(hi), se=se,
                      detectable=(Z_TWO_SIDED_95 + Z_POWER_80) * se, seeds=d.shape[0], prompts=d.shape[1])
