"""Tier aggregation: per-criterion scores -> S1, S2, S3 -> the GRPO reward. Pure numpy.

Shapes: `values` is (K,) with v_i in [0, 1], one per criterion of one response's rubric.
For proficiency criteria v_i is how far the criterion is met; for bonus criteria, whether it is met;
for veto criteria, whether the violation is present (1 = violated).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Callable, Sequence

import numpy as np


@dataclass(frozen=True)
class RewardShape:
    """r = clip(S1 + alpha*S2, 0, 1+beta) - lam*S3, with alpha < 1, beta > 0, lam >= 1 + beta.

    A safe response scores in [0, 1 + beta]; one with a violated veto at most 1 + beta - lam. So
    lam > 1 + beta ranks every vetoed response strictly below every safe one; lam = 1 + beta only
    weakly (the best vetoed and the worst safe response can both score 0: a tie). Hence the default
    lam = 2.0 with beta = 0.5.
    """

    alpha: float = 0.2
    beta: float = 0.5
    lam: float = 2.0
    bonus_threshold: float = 0.5       # a bonus criterion counts as met when v_i >= this
    veto_threshold: float = 0.5        # a veto criterion counts as violated when v_i >= this
    gdpo_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)   # gdpo: weights of S1, S2 and -S3

    @classmethod
    def of(cls, source: Any) -> "RewardShape":
        """The shape from any object holding its fields by name: the reward.* config, serve-rm's flags.

        The one builder of a RewardShape from settings, so a new field reaches every entry point.
        """
        values = {f.name: getattr(source, f.name) for f in fields(cls)}
        return cls(**{**values, "gdpo_weights": tuple(values["gdpo_weights"])})

    def problems(self) -> list[str]:
        """Each violated constraint as 'key: what is wrong; fix', empty when valid."""
        out = []
        if not 0 <= self.alpha < 1:
            out.append(f"alpha={self.alpha}: must satisfy 0 <= alpha < 1")
        if not self.beta > 0:
            out.append(f"beta={self.beta}: must be > 0")
        if not self.lam >= 1 + self.beta:
            out.append(f"lam={self.lam}: must be >= 1 + beta = {1 + self.beta} (a vetoed response never above "
                       f"a safe one; > {1 + self.beta} for strictly below); raise lam or lower beta")
        w = tuple(self.gdpo_weights)
        if len(w) != 3 or min(w) < 0 or sum(w) <= 0:
            out.append(f"gdpo_weights={list(w)}: must be three weights >= 0 (S1, S2, -S3) with a positive sum")
        for key in ("bonus_threshold", "veto_threshold"):
            if not 0 < getattr(self, key) <= 1:
                out.append(f"{key}={getattr(self, key)}: must be in (0, 1]")
        return out


@dataclass(frozen=True)
class TierScores:
    s1: float   # proficiency in [0, 1]
    s2: float   # number of bonus criteria met
    s3: float   # number of veto criteria violated
    reward: float


def normalised_weights(weights: Sequence[float]) -> np.ndarray:
    """Proficiency weights scaled to sum to 1; all-zero weights become uniform."""
    w = np.asarray(weights, dtype=np.float64)
    total = w.sum()
    if w.size == 0:
        return w
    return w / total if total > 0 else np.full_like(w, 1.0 / w.size)


def promedical(values: Sequence[float], tiers: Sequence[str], weights: Sequence[float],
               shape: RewardShape) -> TierScores:
    """The paper's hierarchical roll-up (S1 weighted mean, S2 and S3 counts, clipped bonus, veto penalty)."""
    v = np.asarray(values, dtype=np.float64)
    t = np.asarray(tiers)
    prof = t == "proficiency"
    s1 = float(normalised_weights(np.asarray(weights, dtype=np.float64)[prof]) @ v[prof]) if prof.any() else 0.0
    s2 = float((v[t == "bonus"] >= shape.bonus_threshold).sum())
    s3 = float((v[t == "veto"] >= shape.veto_threshold).sum())
    reward = float(np.clip(s1 + shape.alpha * s2, 0.0, 1.0 + shape.beta) - shape.lam * s3)
    return TierScores(s1=s1, s2=s2, s3=s3, reward=reward)


def no_veto(values: Sequence[float], tiers: Sequence[str], weights: Sequence[float],
            shape: RewardShape) -> TierScores:
    """Ablation: the same roll-up with the safety veto switched off (the paper's reward-hacking case)."""
    scores = promedical(values, tiers, weights, shape)
    reward = float(np.clip(scores.s1 + shape.alpha * scores.s2, 0.0, 1.0 + shape.beta))
    return TierScores(s1=scores.s1, s2=scores.s2, s3=scores.s3, reward=reward)


def scalar(values: Sequence[float], tiers: Sequence[str], weights: Sequence[float],
           shape: RewardShape) -> TierScores:
    """One scalar per response: the mean v over proficiency and bonus criteria, no tiers, no veto.

    Meant for a criterion-agnostic reward model, which gives every criterion of a response the same v,
    so the reward is that model's single calibrated score (the paper's scalar-reward baseline).
    S1, S2, S3 are reported as the promedical roll-up computes them.
    """
    scores = promedical(values, tiers, weights, shape)
    v = np.asarray(values, dtype=np.float64)
    positive = np.asarray(tiers) != "veto"
    reward = float(v[positive].mean()) if positive.any() else 0.0
    return TierScores(s1=scores.s1, s2=scores.s2, s3=scores.s3, reward=reward)


Aggregator = Callable[[Sequence[float], Sequence[str], Sequence[float], RewardShape], TierScores]

AGGREGATORS: dict[str, Aggregator] = {"promedical": promedical, "no_veto": no_veto, "scalar": scalar}


# Group aggregators: the reward of each response from the tier scores of its whole GRPO group.
# Shapes: s1, s2, s3 and group_ids are (N,); the result is (N,). Groups need not be contiguous.

def _groups(group_ids: np.ndarray) -> list[np.ndarray]:
    """Row indices of each group, in order of first appearance."""
    _, inverse = np.unique(np.asarray(group_ids), return_inverse=True)
    inverse = inverse.reshape(-1)
    return [np.flatnonzero(inverse == g) for g in range(inverse.max() + 1)] if inverse.size else []


def lexicographic(s1: np.ndarray, s2: np.ndarray, s3: np.ndarray, group_ids: np.ndarray,
                  shape: RewardShape) -> np.ndarray:
    """Within a group, rank by fewer violations (S3), then higher S1, then higher S2 (the paper's
    preference order); reward = rank / (G - 1) in [0, 1], ties sharing their mean rank, 0.5 for G = 1.

    Guarantee: within a group, a response with more violated vetoes ranks strictly below one with
    fewer, whatever its S1 and S2, for any alpha, beta and lam (they are unused).
    """
    s1, s2, s3 = (np.asarray(x, dtype=np.float64).reshape(-1) for x in (s1, s2, s3))
    out = np.zeros(s1.size)
    for rows in _groups(group_ids):
        a1, a2, a3 = s1[rows], s2[rows], s3[rows]
        # worse[i, j]: response j is strictly below response i in the lexicographic order
        worse = (a3[None, :] > a3[:, None]) | ((a3[None, :] == a3[:, None]) & (
            (a1[None, :] < a1[:, None]) | ((a1[None, :] == a1[:, None]) & (a2[None, :] < a2[:, None]))))
        tied = (a1[None, :] == a1[:, None]) & (a2[None, :] == a2[:, None]) & (a3[None, :] == a3[:, None])
        rank = worse.sum(1) + (tied.sum(1) - 1) / 2.0
        out[rows] = rank / (rows.size - 1) if rows.size > 1 else 0.5
    return out


def _group_z(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(x - mean) / (sample std + 1e-6) over `rows`; exactly 0 when the group is constant."""
    v = x[rows]
    if v.max() == v.min():
        return np.zeros(rows.size)
    return (v - v.mean()) / (v.std(ddof=1) + 1e-6)


def gdpo(s1: np.ndarray, s2: np.ndarray, s3: np.ndarray, group_ids: np.ndarray, shape: RewardShape) -> np.ndarray:
    """GDPO: normalise S1, S2 and -S3 within the group separately, then combine with gdpo_weights.

    reward = w1 z(S1) + w2 z(S2) + w3 z(-S3), each z a group z-score with the sample std (0 for a
    tier constant in the group), so a tier with a small spread keeps its voice. The advantage
    estimator then normalises the combined reward within the group again. Guarantee: none about
    safety; a vetoed response can outrank a safe one when its S1/S2 z-scores outweigh w3 z(-S3).
    """
    s1, s2, s3 = (np.asarray(x, dtype=np.float64).reshape(-1) for x in (s1, s2, s3))
    w1, w2, w3 = shape.gdpo_weights
    out = np.zeros(s1.size)
    for rows in _groups(group_ids):
        out[rows] = w1 * _group_z(s1, rows) + w2 * _group_z(s2, rows) + w3 * _group_z(-s3, rows)
    return out


GroupAggregator = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, RewardShape], np.ndarray]

GROUP_AGGREGATORS: dict[str, GroupAggregator] = {"lexicographic": lexicographic, "gdpo": gdpo}
# every name reward.aggregator may take: per-response roll-ups, then group aggregators (which re-score
# the S1, S2, S3 of the promedical roll-up)
REWARD_AGGREGATORS: tuple[str, ...] = tuple(AGGREGATORS) + tuple(GROUP_AGGREGATORS)
