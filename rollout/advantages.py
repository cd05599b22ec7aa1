"""GRPO group advantages: a pure function of the reward column and the group ids. Numpy only.

Shapes: `rewards` (N,) float, `group_ids` (N,) int; the result is (N,).
Zero-variance groups (every sample got the same reward) carry no learning signal: their advantages
are exactly 0 under both estimators, instead of 0/eps noise.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

EPS = 1e-6


def _group_stats(rewards: np.ndarray, group_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row mean and population std of the row's group."""
    _, inverse = np.unique(group_ids, return_inverse=True)
    counts = np.bincount(inverse)
    mean = np.bincount(inverse, weights=rewards) / counts
    var = np.bincount(inverse, weights=(rewards - mean[inverse]) ** 2) / counts
    return mean[inverse], np.sqrt(var)[inverse]


def grpo(rewards: np.ndarray, group_ids: np.ndarray) -> np.ndarray:
    """A_i = (r_i - mean_g) / (std_g + eps); 0 where std_g == 0."""
    rewards = np.asarray(rewards, dtype=np.float64)
    mean, std = _group_stats(rewards, np.asarray(group_ids))
    return np.where(std > 0, (rewards - mean) / (std + EPS), 0.0)


def drgrpo(rewards: np.ndarray, group_ids: np.ndarray) -> np.ndarray:
    """Dr. GRPO: A_i = r_i - mean_g, no std division (removes the difficulty bias); 0 for constant groups."""
    rewards = np.asarray(rewards, dtype=np.float64)
    mean, std = _group_stats(rewards, np.asarray(group_ids))
    return np.where(std > 0, rewards - mean, 0.0)


AdvantageFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
ADVANTAGES: dict[str, AdvantageFn] = {"grpo": grpo, "drgrpo": drgrpo}
