"""Bad values never train: rows with non-finite rewards, their advantages, bad steps. Numpy only.

A row whose reward is NaN or infinite gets advantage exactly 0 and leaves the policy loss
(the driver's `loss_mask` column is False); the other rows' advantages come from the finite rows of
their group only, so one NaN does not spoil its group. The policy masks rows with non-finite
logprobs the same way and skips a micro-batch whose loss is not finite (actors/policy.py).
A step is bad when no row was left in the loss or every micro-batch was skipped; `limit` bad steps
in a row stop the run with one line (BadValuesError; the CLI exits 1).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np


class BadValuesError(RuntimeError):
    """Too many bad steps in a row: one line naming the cause and run.max_bad_steps."""


def finite_rows(values: Sequence[Any]) -> np.ndarray:
    """(N,) bool: True where row i is finite; a row is a number or a sequence of numbers (ragged allowed)."""
    if isinstance(values, np.ndarray) and values.dtype != object:
        flat = np.asarray(values, dtype=np.float64)
        return np.isfinite(flat) if flat.ndim == 1 else np.isfinite(flat).all(axis=tuple(range(1, flat.ndim)))
    return np.array([bool(np.isfinite(np.asarray(v, dtype=np.float64)).all()) for v in values], dtype=bool)


def masked_advantages(advantage: Callable[..., np.ndarray], rewards: np.ndarray, group_ids: np.ndarray, *,
                      std: str = "sample") -> tuple[np.ndarray, np.ndarray]:
    """(advantages, loss_mask), each (N,): `advantage` (rollout/advantages.py) over the finite rows only.

    A row with a non-finite reward gets advantage exactly 0 and loss_mask False; a group's statistics
    (mean, std, constancy) are those of its finite rows.
    """
    rewards = np.asarray(rewards, dtype=np.float64).reshape(-1)
    group_ids = np.asarray(group_ids).reshape(-1)
    ok = np.isfinite(rewards)
    out = np.zeros(rewards.shape, dtype=np.float64)
    if ok.any():
        out[ok] = advantage(rewards[ok], group_ids[ok], std=std)
    return out, ok


@dataclass(frozen=True)
class StepHealth:
    """What the guards did in one step (counts over the whole batch, all policy ranks summed)."""

    rows: int                       # rows in the batch
    nonfinite_reward_rows: int      # masked by the driver
    nonfinite_logprob_rows: int     # masked by the policy (behaviour or reference logprobs)
    masked_rows: int                # rows left out of the loss for either reason
    microbatches: int               # micro-batches the policy ran
    skipped_microbatches: int       # of which the loss was not finite: no gradient from them

    @property
    def bad(self) -> bool:
        every_row = self.rows > 0 and self.masked_rows >= self.rows
        return every_row or (self.microbatches > 0 and self.skipped_microbatches >= self.microbatches)

    def metrics(self) -> dict[str, float]:
        return {"nonfinite_reward_rows": float(self.nonfinite_reward_rows),
                "nonfinite_logprob_rows": float(self.nonfinite_logprob_rows),
                "masked_rows": float(self.masked_rows), "skipped_microbatches": float(self.skipped_microbatches),
                "bad_step": float(self.bad)}


def step_health(loss_mask: np.ndarray, train: dict[str, float]) -> StepHealth:
    """The step's health from the driver's loss mask and the policy's summed report (keys may be absent)."""
    loss_mask = np.asarray(loss_mask, dtype=bool)
    get = lambda key: int(round(train.get(key, 0.0)))  # noqa: E731
    return StepHealth(rows=int(loss_mask.size), nonfinite_reward_rows=int((~loss_mask).sum()),
                      nonfinite_logprob_rows=get("nonfinite_logprob_rows"),
                      masked_rows=max(get("masked_rows"), int((~loss_mask).sum())),
                      microbatches=get("microbatches"), skipped_microbatches=get("skipped_microbatches"))


@dataclass
class BadSteps:
    """Counts bad steps in a row from each step's metrics; the `limit`-th raises BadValuesError."""

    limit: int
    in_a_row: int = 0

    def observe(self, step: int, metrics: dict[str, Any]) -> None:
        if not metrics.get("bad_step"):
            self.in_a_row = 0
            return
        self.in_a_row += 1
        if self.in_a_row >= self.limit:
            raise BadValuesError(
                f"stopped at step {step}: {self.in_a_row} bad steps in a row (run.max_bad_steps={self.limit}); "
                f"last step: {describe(metrics)}; nothing was trained on those values; check the reward "
                f"grader and the data, or raise run.max_bad_steps")


def describe(metrics: dict[str, Any]) -> str:
    """What the guards caught in one step, from its metrics, in a few words."""
    count = lambda key: int(metrics.get(key, 0))  # noqa: E731
    judge = {k[len("judge_invalid_"):]: count(k) for k in sorted(metrics) if k.startswith("judge_invalid_")}
    invalid = (f", {count('judge_invalid')} of {count('judge_verdicts')} judge verdicts invalid ("
               + ", ".join(f"{k}={v}" for k, v in judge.items()) + ")") if judge else ""
    return (f"{count('masked_rows')} rows masked ({count('nonfinite_reward_rows')} non-finite rewards, "
            f"{count('nonfinite_logprob_rows')} non-finite logprobs), "
            f"{count('skipped_microbatches')} micro-batches skipped for a non-finite loss{invalid}")
