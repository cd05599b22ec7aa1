"""Dynamic sampling and overlong shaping: pure functions of rewards, group ids and lengths. Numpy only.

Dynamic sampling (DAPO): a group whose rewards are all equal has zero advantage under every estimator
and only adds KL to the step, so the driver drops it and generates more prompts until the batch
holds `prompts_per_step` informative groups.
Soft overlong penalty (DAPO): responses that run into the last `buffer` tokens of the generation
budget lose reward linearly, up to -1 at the budget itself.
"""
from __future__ import annotations

import numpy as np

OVERLONG_MODES = ("none", "filter", "soft")


def informative_groups(rewards: np.ndarray, group_ids: np.ndarray) -> np.ndarray:
    """Group ids, in order of first appearance, whose rewards are not all equal (max != min, exact).

    Non-finite rewards are left out (they are masked from training, rollout/guards.py): a group is
    informative when its finite rewards differ."""
    rewards = np.asarray(rewards, dtype=np.float64).reshape(-1)
    rewards = np.where(np.isfinite(rewards), rewards, np.nan)
    group_ids = np.asarray(group_ids).reshape(-1)
    order, first, inverse = np.unique(group_ids, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    high = np.full(order.size, -np.inf)
    low = np.full(order.size, np.inf)
    np.fmax.at(high, inverse, rewards)     # fmax/fmin skip NaN; a group with no finite reward keeps -inf, inf
    np.fmin.at(low, inverse, rewards)
    keep = high > low
    by_appearance = np.argsort(first, kind="stable")
    return order[by_appearance][keep[by_appearance]]


def choose_groups(informative: list[int], uninformative: list[int], wanted: int) -> tuple[list[int], int]:
    """The `wanted` groups to train on: informative ones first, in order; then, if the sampling rounds
    ran out, uninformative ones to keep the batch shape (they carry zero advantage, only KL).

    Returns (group ids, how many uninformative groups filled the shortfall).
    """
    chosen = list(informative[:wanted])
    short = wanted - len(chosen)
    return chosen + list(uninformative[:short]), max(0, short)


def soft_overlong_penalty(lengths: np.ndarray, *, max_new_tokens: int, buffer: int) -> np.ndarray:
    """DAPO's soft overlong punishment, (N,) values in [-1, 0].

    With L = max_new_tokens and B = buffer: 0 for length <= L - B; (L - B - length) / B for
    L - B < length <= L; -1 beyond L (a response is never longer than L here, so that branch only
    guards against an inconsistent budget).
    """
    if not 0 < buffer <= max_new_tokens:
        raise ValueError(f"buffer={buffer}: must satisfy 0 < buffer <= max_new_tokens={max_new_tokens}")
    lengths = np.asarray(lengths, dtype=np.float64).reshape(-1)
    start = max_new_tokens - buffer
    penalty = np.minimum(0.0, (start - lengths) / buffer)
    return np.where(lengths > max_new_tokens, -1.0, penalty)


def veto_banded(reward: np.ndarray, penalty: np.ndarray, s3: np.ndarray, lam: float) -> np.ndarray:
    """A penalty (<= 0) added to the promedical reward inside the response's veto band.

    reward = clip(S1 + a*S2, 0, 1+b) - lam*S3, so reward + lam*S3 is the response's safe part, in
    [0, 1+b]. The penalty lowers the safe part, not below 0, and the veto applies after it:
    max(reward + lam*S3 + penalty, 0) - lam*S3. A response with k violated vetoes then stays in
    [-lam*k, 1+b - lam*k], as without shaping, so with lam > 1+b one with fewer violations still ranks
    strictly above one with more (a safe response above every vetoed one). The price: a safe response
    whose safe part is already 0 gets no length penalty.
    """
    s3 = np.asarray(s3, dtype=np.float64)
    return np.maximum(np.asarray(reward, dtype=np.float64) + lam * s3 + penalty, 0.0) - lam * s3
