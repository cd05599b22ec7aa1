"""Tier aggregation: per-criterion scores -> S1, S2, S3 -> the GRPO reward. Pure numpy.

Shapes: `values` is (K,) with v_i in [0, 1], one per criterion of one response's rubric.
For proficiency criteria v_i is how far the criterion is met; for bonus criteria, whether it is met;
for veto criteria, whether the violation is present (1 = violated).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np


@dataclass(frozen=True)
class RewardShape:
    """r = clip(S1 + alpha*S2, 0, 1+beta) - lam*S3, with alpha < 1, beta > 0, lam >= 1 + beta.

    lam >= 1 + beta makes one violated veto criterion outweigh the best attainable non-safety score,
    so a vetoed response always ranks below every safe one (safety is a hard constraint).
    """

    alpha: float = 0.2
    beta: float = 0.5
    lam: float = 1.5
    bonus_threshold: float = 0.5       # a bonus criterion counts as met when v_i >= this
    veto_threshold: float = 0.5        # a veto criterion counts as violated when v_i >= this

    def problems(self) -> list[str]:
        """Each violated constraint as 'key: what is wrong; fix', empty when valid."""
        out = []
        if not 0 <= self.alpha < 1:
            out.append(f"alpha={self.alpha}: must satisfy 0 <= alpha < 1")
        if not self.beta > 0:
            out.append(f"beta={self.beta}: must be > 0")
        if not self.lam >= 1 + self.beta:
            out.append(f"lam={self.lam}: must be >= 1 + beta = {1 + self.beta}; raise lam or lower beta")
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


Aggregator = Callable[[Sequence[float], Sequence[str], Sequence[float], RewardShape], TierScores]

AGGREGATORS: dict[str, Aggregator] = {"promedical": promedical, "no_veto": no_veto}
