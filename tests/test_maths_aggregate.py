"""Tier roll-up S1/S2/S3, the GRPO reward and the group aggregators on hand-worked numbers."""
import numpy as np
import pytest

from promedical.reward.aggregate import (GROUP_AGGREGATORS, REWARD_AGGREGATORS, RewardShape, gdpo, lexicographic,
                                         no_veto, normalised_weights, promedical)

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


def test_default_lam_ranks_best_vetoed_strictly_below_worst_safe():
    # default lam 2.0, beta 0.5: best vetoed = clip(1 + 0.2*2, 0, 1.5) - 2 = -0.6 < 0 = worst safe
    shape = RewardShape()
    best_vetoed = promedical([1.0, 1.0, 1.0, 1.0, 1.0], TIERS, WEIGHTS, shape)
    assert best_vetoed.reward == pytest.approx(-0.6)
    # with lam = 1 + beta exactly, a response with every bonus (S1 + alpha*S2 clipped to 1 + beta) and one
    # veto scores 1.5 - 1.5 = 0: the same as the worst safe response (a tie, not "below")
    tie = RewardShape(alpha=0.5, beta=0.5, lam=1.5)
    assert promedical([1.0, 1.0, 1.0, 1.0, 1.0], TIERS, WEIGHTS, tie).reward == 0.0
    assert promedical([0.0] * 5, TIERS, WEIGHTS, tie).reward == 0.0
    assert tie.problems() == [] and "strictly below" in RewardShape(lam=1.2).problems()[0]


# one group of four: S1, S2, S3 per response
S1 = np.array([0.9, 0.2, 0.9, 0.5])
S2 = np.array([2.0, 0.0, 1.0, 1.0])
S3 = np.array([1.0, 0.0, 0.0, 0.0])
G4 = np.zeros(4, dtype=int)


def test_lexicographic_ranks_s3_then_s1_then_s2():
    # order worst -> best: row 0 (one veto, despite the best S1/S2), row 1 (S1 .2), row 3 (S1 .5),
    # row 2 (S1 .9) -> ranks 0, 1, 3, 2 over G - 1 = 3
    out = lexicographic(S1, S2, S3, G4, RewardShape())
    np.testing.assert_allclose(out, [0.0, 1 / 3, 1.0, 2 / 3])


def test_lexicographic_breaks_s1_ties_by_s2_and_shares_full_ties():
    # S1 equal for all: S2 decides (0 < 1 = 1 < 2); rows 1 and 2 tie fully -> mean rank (1 + 2)/2
    out = lexicographic(np.full(4, 0.5), np.array([0.0, 1.0, 1.0, 2.0]), np.zeros(4), G4, RewardShape())
    np.testing.assert_allclose(out, [0.0, 0.5, 0.5, 1.0])
    # a constant group is all ties: the same reward for everyone (zero advantage), 0.5
    np.testing.assert_allclose(lexicographic(np.ones(3), np.ones(3), np.ones(3), np.zeros(3), RewardShape()), 0.5)


def test_lexicographic_keeps_groups_apart():
    # two interleaved groups of two: each ranked on its own
    out = lexicographic(np.array([0.1, 0.9, 0.8, 0.3]), np.zeros(4), np.zeros(4), np.array([5, 6, 5, 6]),
                        RewardShape())
    np.testing.assert_allclose(out, [0.0, 1.0, 1.0, 0.0])


def test_gdpo_normalises_each_tier_within_the_group():
    # S1 = 0, 1 -> z = -1/sqrt2, +1/sqrt2 (sample std sqrt(0.5)); S2 = 0, 2 -> the same z (scale-free);
    # S3 = 1, 1 constant -> 0. Weights (1, 1, 1): reward = -sqrt2, +sqrt2
    out = gdpo(np.array([0.0, 1.0]), np.array([0.0, 2.0]), np.array([1.0, 1.0]), np.zeros(2), RewardShape())
    np.testing.assert_allclose(out, [-np.sqrt(2), np.sqrt(2)], rtol=1e-5)
    # weights (1, 0, 3) and -S3 = 0, -1: z(S1) = -/+ 1/sqrt2, z(-S3) = +/- 1/sqrt2 -> (-1 + 3)/sqrt2, (1 - 3)/sqrt2
    shape = RewardShape(gdpo_weights=(1.0, 0.0, 3.0))
    out = gdpo(np.array([0.0, 1.0]), np.zeros(2), np.array([0.0, 1.0]), np.zeros(2), shape)
    np.testing.assert_allclose(out, [2 / np.sqrt(2), -2 / np.sqrt(2)], rtol=1e-5)


def test_gdpo_gives_no_safety_guarantee():
    # equal weights: a vetoed response with far better S1 and S2 outranks a safe one (documented)
    out = gdpo(np.array([1.0, 0.0, 0.0]), np.array([2.0, 0.0, 0.0]), np.array([1.0, 0.0, 0.0]), np.zeros(3),
               RewardShape())
    assert out[0] > out[1]


def test_gdpo_weights_are_checked():
    assert RewardShape(gdpo_weights=(1.0, -1.0, 1.0)).problems()[0].startswith("gdpo_weights")
    assert RewardShape(gdpo_weights=(0.0, 0.0, 0.0)).problems()[0].startswith("gdpo_weights")


def test_every_aggregator_name_is_registered():
    assert {"promedical", "no_veto"} <= set(REWARD_AGGREGATORS) and REWARD_AGGREGATORS[-2:] == ("lexicographic", "gdpo")
    assert set(GROUP_AGGREGATORS) == {"lexicographic", "gdpo"}
