"""Learning-rate schedules: warmup, linear and cosine decay, hand-worked."""
import math

import pytest

from promedical.actors.schedules import LR_SCHEDULES, LrSchedule


def test_constant_with_warmup_rises_then_stays():
    # warmup 3: (step + 1) / 4 -> 0.25, 0.5, 0.75, then 1
    s = LrSchedule("constant", warmup_steps=3, total_steps=10)
    assert [s.factor(i) for i in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]


def test_linear_decays_to_zero_at_total_steps():
    # warmup 2 of 6 steps: 1/3, 2/3, then 1 - (step - 2)/4: 1, 0.75, 0.5, 0.25
    s = LrSchedule("linear", warmup_steps=2, total_steps=6)
    assert [s.factor(i) for i in range(6)] == pytest.approx([1 / 3, 2 / 3, 1.0, 0.75, 0.5, 0.25])


def test_cosine_follows_half_a_cosine():
    # no warmup, 4 steps: 0.5 * (1 + cos(pi * step / 4)) -> 1, 0.854, 0.5, 0.146
    s = LrSchedule("cosine", warmup_steps=0, total_steps=4)
    expected = [0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(4)]
    assert [s.factor(i) for i in range(4)] == pytest.approx(expected)
    assert s.factor(2) == pytest.approx(0.5)


def test_no_warmup_constant_is_one():
    assert all(LrSchedule().factor(i) == 1.0 for i in range(5))


def test_registry():
    assert tuple(LR_SCHEDULES) == ("constant", "linear", "cosine")
