"""Group advantages: pure functions of the reward column and the group ids. Numpy only.

Shapes: `rewards` (N,) float, `group_ids` (N,) int; the result is (N,).
A constant group (max == min: every sample got the same reward) carries no learning signal; it is
detected exactly, by comparing the group's extremes rather than a computed std, and its advantages
are exactly 0 under every estimator (a mean such as 0.1 is not exact in binary, so r - mean != 0).
`std` chooses the group standard deviation of `grpo`: "sample" (n - 1 denominator, as verl, TRL and
OpenRLHF) or "population" (n denominator).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

EPS = 1e-6          # added to the std, as verl's GRPO estimator does
STDS = ("sample", "population")


@dataclass(frozen=True)
class GroupStats:
    """Per-row statistics of the row's group, each (N,)."""

    mean: np.ndarray
    std: np.ndarray          # chosen by `std`; 0 for groups of one sample under "sample"
    count: np.ndarray        # group size
    constant: np.ndarray     # bool: max == min within the group


def group_stats(rewards: np.ndarray, group_ids: np.ndarray, std: str = "sample") -> GroupStats:
    """Mean, std, size and exact constancy of each row's group; groups need not be contiguous."""
    if std not in STDS:
        raise ValueError(f"std={std!r}: choose one of {STDS}")
    _, inverse = np.unique(group_ids, return_inverse=True)
    inverse = inverse.reshape(-1)
    counts = np.bincount(inverse)
    mean = np.bincount(inverse, weights=rewards) / counts
    squares = np.bincount(inverse, weights=(rewards - mean[inverse]) ** 2)
    dof = counts - 1 if std == "sample" else counts
    var = np.divide(squares, dof, out=np.zeros_like(squares), where=dof > 0)
    high = np.full(counts.size, -np.inf)
    low = np.full(counts.size, np.inf)
    np.maximum.at(high, inverse, rewards)
    np.minimum.at(low, inverse, rewards)
    return GroupStats(mean=mean[inverse], std=np.sqrt(var)[inverse], count=counts[inverse].astype(np.float64),
                      constant=(high == low)[inverse])


def _prepare(rewards, group_ids) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(rewards, dtype=np.float64).reshape(-1), np.asarray(group_ids).reshape(-1)


def grpo(rewards: np.ndarray, group_ids: np.ndarray, *, std: str = "sample") -> np.ndarray:
    """A_i = (r_i - mean_g) / (std_g + eps); exactly 0 for a constant group."""
    rewards, group_ids = _prepare(rewards, group_ids)
    s = group_stats(rewards, group_ids, std)
    return np.where(s.constant, 0.0, (rewards - s.mean) / (s.std + EPS))


def drgrpo(rewards: np.ndarray, group_ids: np.ndarray, *, std: str = "sample") -> np.ndarray:
    """Dr. GRPO: A_i = r_i - mean_g, no std division (removes the difficulty bias); `std` is unused."""
    rewards, group_ids = _prepare(rewards, group_ids)
    s = group_stats(rewards, group_ids, std)
    return np.where(s.constant, 0.0, rewards - s.mean)


def rloo(rewards: np.ndarray, group_ids: np.ndarray, *, std: str = "sample") -> np.ndarray:
    """Leave-one-out: A_i = r_i - mean_{j != i} r_j = G/(G-1) * (r_i - mean_g); `std` is unused.

    A group of one sample has no other sample to compare with, so its advantage is 0 (it is constant).
    """
    rewards, group_ids = _prepare(rewards, group_ids)
    s = group_stats(rewards, group_ids, std)
    scale = np.divide(s.count, s.count - 1, out=np.zeros_like(s.count), where=s.count > 1)
    return np.where(s.constant, 0.0, scale * (rewards - s.mean))


class AdvantageFn(Protocol):
    def __call__(self, rewards: np.ndarray, group_ids: np.ndarray, *, std: str = "sample") -> np.ndarray: ...


ADVANTAGES: dict[str, AdvantageFn] = {"grpo": grpo, "drgrpo": drgrpo, "rloo": rloo}

