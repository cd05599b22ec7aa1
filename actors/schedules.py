"""Learning-rate schedules: the factor that multiplies algo.lr at each training step. Pure Python.

A training step is one rollout batch (one policy version), as verl steps its scheduler once per
update; every optimizer step inside that batch uses the same rate. The factor is a function of the
step alone, so a resumed run (which restores the policy version) continues on the same curve.
Warmup rises linearly from 1/(warmup+1) to 1 over `warmup_steps` steps; `linear` and `cosine` then decay
to 0 at `total_steps`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable


def _warmup(step: int, warmup_steps: int) -> float:
    return (step + 1) / (warmup_steps + 1) if step < warmup_steps else 1.0


def _progress(step: int, warmup_steps: int, total_steps: int) -> float:
    """Fraction of the decay phase done after warmup, in [0, 1]."""
    span = max(1, total_steps - warmup_steps)
    return min(1.0, max(0.0, (step - warmup_steps) / span))


def constant(step: int, warmup_steps: int, total_steps: int) -> float:
    return _warmup(step, warmup_steps)


def linear(step: int, warmup_steps: int, total_steps: int) -> float:
    if step < warmup_steps:
        return _warmup(step, warmup_steps)
    return 1.0 - _progress(step, warmup_steps, total_steps)


def cosine(step: int, warmup_steps: int, total_steps: int) -> float:
    if step < warmup_steps:
        return _warmup(step, warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * _progress(step, warmup_steps, total_steps)))


LR_SCHEDULES: dict[str, Callable[[int, int, int], float]] = {
    "constant": constant, "linear": linear, "cosine": cosine}


@dataclass(frozen=True)
class LrSchedule:
    """algo.lr_schedule with its warmup, over a run of `total_steps` training steps."""

    name: str = "constant"
    warmup_steps: int = 0
    total_steps: int = 1

    def factor(self, step: int) -> float:
        """Multiplier of the base learning rate at training step `step` (0-based)."""
        return LR_SCHEDULES[self.name](step, self.warmup_steps, self.total_steps)
