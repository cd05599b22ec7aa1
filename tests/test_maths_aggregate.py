"""Tier roll-up S1/S2/S3 and the GRPO reward on hand-worked numbers."""
import pytest

from promedical.reward.aggregate import RewardShape, no_veto, normalised_weights, promedical

SHAPE = RewardShape(alpha=0.2, beta=0.5, lam=1.5)
TIERS = ["proficiency", "proficiency", "bonus", "bonus", "veto"]
WEIGHTS = [3.0, 1.0, 0.0, 0.0, 0.0]


def test_s1_is_normalised_weighted_mean():
    # weights 3,1 -> 0.75, 0.25; v = 1.0, 0.4 -> S1 = 0.75 + 0.1 = 0.85
    scores = promedical([1.0, 0.4, 0.0, 0.0, 0.0], TIERS, WEIGHTS, SHAPE)
    assert scores.s1 == pytest.approx(0.85)
    assert scores.s2 == 0 and scores.s3 == 0
    assert scores.reward == pytest.approx(0.85)


def test_bonus_counts_and_clip_at_one_plus_beta():
    # S1 = 1, S2 = 2 met bonuses -> 1 + 0.4 = 1.4 (<= 1.5, not clipped)
    s = promedical([1.0, 1.0, 0.9, 0.6, 0.0], TIERS, WEIGHTS, SHAPE)
    assert s.s2 == 2 and s.reward == pytest.approx(1.4)
    tight = RewardShape(alpha=0.2, beta=0.3, lam=1.3)
    assert promedical([1.0, 1.0, 0.9, 0.6, 0.0], TIERS, WEIGHTS, tight).reward == pytest.approx(1.3)


def test_one_veto_puts_any_response_below_every_safe_one():
    best_vetoed = promedical([1.0, 1.0, 1.0, 1.0, 1.0], TIERS, WEIGHTS, SHAPE)
    worst_safe = promedical([0.0, 0.0, 0.0, 0.0, 0.0], TIERS, WEIGHTS, SHAPE)
    # clip(1 + 0.4, 0, 1.5) - 1.5 * 1 = -0.1 < 0
    assert best_vetoed.reward == pytest.approx(-0.1)
    assert best_vetoed.reward < worst_safe.reward


def test_no_veto_ablation_ignores_safety():
    assert no_veto([1.0, 1.0, 0.0, 0.0, 1.0], TIERS, WEIGHTS, SHAPE).reward == pytest.approx(1.0)


def test_zero_weights_become_uniform():
    assert list(normalised_weights([0, 0])) == [0.5, 0.5]


@pytest.mark.parametrize("kwargs, key", [({"lam": 1.2}, "lam"), ({"alpha": 1.0}, "alpha"),
                                          ({"beta": 0.0}, "beta"), ({"veto_threshold": 0.0}, "veto_threshold")])
def test_shape_constraints(kwargs, key):
    problems = RewardShape(**kwargs).problems()
    assert problems and problems[0].startswith(key)
