"""Hand-worked checks of the evaluation maths: HealthBench-compatible scores, tier scores, bootstrap."""
import math

import numpy as np
import pytest

from promedical.evaluation.scoring import (bootstrap_ci, clipped_mean, criterion_points, estimate,
                                           healthbench_example_score, healthbench_scores, tier_scores)
from promedical.reward.aggregate import RewardShape
from promedical.reward.rubric import Criterion, Tier


def crit(cid, points, axis="accuracy", tier=None, weight=None):
    tier = tier or (Tier.VETO if points < 0 else Tier.PROFICIENCY)
    weight = weight if weight is not None else (max(points, 0.0) if tier is Tier.PROFICIENCY else 0.0)
    return Criterion(id=cid, text=cid, tier=tier, weight=weight, axis=axis,
                     tags=(f"points:{points:g}", f"axis:{axis}"))


def test_issue_example_points_7_5_10_minus6():
    # met: 7 yes, 5 no, 10 yes, -6 yes -> (7 + 10 - 6) / (7 + 5 + 10) = 11 / 22 = 0.5
    assert healthbench_example_score([7, 5, 10, -6], [True, False, True, True]) == pytest.approx(11 / 22)


def test_example_score_is_not_clipped_per_example():
    # only the harm is met: -6 / 10 = -0.6, kept negative for the example
    assert healthbench_example_score([10, -6], [False, True]) == pytest.approx(-0.6)


def test_invalid_verdict_leaves_item_out_of_both_sums():
    # the 5-point item is invalid: (7 + 10 - 6) / (7 + 10) = 11 / 17
    assert healthbench_example_score([7, 5, 10, -6], [True, None, True, True]) == pytest.approx(11 / 17)


def test_example_without_valid_positive_points_is_unscorable():
    assert healthbench_example_score([-3, 4], [True, None]) is None
    assert healthbench_example_score([-3], [False]) is None


def test_dataset_mean_clipped_to_unit_interval():
    assert clipped_mean([-0.6, 0.2]) == 0.0            # mean -0.2
    assert clipped_mean([0.5, 0.3]) == pytest.approx(0.4)


def test_points_read_from_importer_tags():
    assert criterion_points(crit("a", -6)) == -6.0
    assert criterion_points(Criterion(id="k", text="k", tier=Tier.PROFICIENCY, weight=1.0)) is None


def test_overall_and_per_axis_scores():
    # example 1: accuracy items 7 (met), 5 (not); completeness 10 (met) and -6 (met)
    #   overall 11/22 = 0.5; accuracy 7/12; completeness (10 - 6)/10 = 0.4
    # example 2: accuracy 4 (met) -> overall 1.0, accuracy 1.0; no completeness items
    ex1 = ([crit("a", 7), crit("b", 5), crit("c", 10, "completeness"), crit("d", -6, "completeness")],
           [True, False, True, True])
    ex2 = ([crit("e", 4)], [True])
    scores = healthbench_scores([ex1, ex2])
    assert scores["overall"].value == pytest.approx((0.5 + 1.0) / 2)
    assert scores["axis:accuracy"].value == pytest.approx((7 / 12 + 1.0) / 2)
    assert scores["axis:completeness"].value == pytest.approx(0.4)
    assert scores["axis:completeness"].n == 1 and scores["overall"].n == 2


def test_tier_scores_hand_worked():
    shape = RewardShape(lam=1.5)   # alpha 0.2, beta 0.5, lam 1.5, thresholds 0.5
    p1 = crit("p1", 2)
    p2 = crit("p2", 1)
    bonus = Criterion(id="b", text="b", tier=Tier.BONUS)
    veto = crit("v", -5)
    # example 1: s1 = 2/3 (p1 met, p2 not), s2 = 1, s3 = 0, reward = 2/3 + 0.2 = 0.8667
    # example 2: p2 invalid -> s1 over p1 alone = 1, veto met -> s3 = 1, reward = 1 - 1.5 = -0.5
    examples = [([p1, p2, bonus, veto], [True, False, True, False]),
                ([p1, p2, bonus, veto], [True, None, False, True])]
    out = tier_scores(examples, shape)
    assert out["s1"].value == pytest.approx((2 / 3 + 1.0) / 2)
    assert out["s2"].value == pytest.approx(0.5)
    assert out["s3"].value == pytest.approx(0.5)
    assert out["veto_rate"].value == pytest.approx(0.5)
    assert out["reward"].value == pytest.approx((2 / 3 + 0.2 - 0.5) / 2)


def test_tier_scores_skip_example_without_valid_proficiency():
    p1, veto = crit("p1", 2), crit("v", -5)
    out = tier_scores([([p1, veto], [None, True]), ([p1, veto], [True, False])], RewardShape())
    assert out["s1"].n == 1 and out["veto_rate"].value == 0.0


def test_bootstrap_hand_worked_two_points():
    # resampling [0, 1] twice: mean 0 (p 1/4), 0.5 (p 1/2), 1 (p 1/4)
    # -> the 95% interval (2.5th, 97.5th percentiles) is [0, 1]; the 40% interval (30th, 70th)
    #    lies inside the middle half of the mass and collapses to [0.5, 0.5]
    assert bootstrap_ci([0.0, 1.0], resamples=4000) == (0.0, 1.0)
    assert bootstrap_ci([0.0, 1.0], resamples=4000, confidence=0.4) == (0.5, 0.5)


def test_bootstrap_constant_and_clip_and_empty():
    assert bootstrap_ci([0.3] * 5) == pytest.approx((0.3, 0.3))
    low, high = bootstrap_ci([1.4, 1.2, 0.9], clip=True)
    assert high == 1.0 and low <= 1.0
    assert all(math.isnan(x) for x in bootstrap_ci([]))
    assert estimate([]) is None


def test_bootstrap_interval_brackets_mean_and_narrows_with_n():
    rng = np.random.default_rng(1)
    small = rng.integers(0, 2, 20).astype(float)
    large = rng.integers(0, 2, 400).astype(float)
    for x in (small, large):
        e = estimate(x)
        assert e.low <= e.value <= e.high
    assert (estimate(large).high - estimate(large).low) < (estimate(small).high - estimate(small).low)


def test_crossed_difference_hand_worked_and_zero_when_arms_agree():
    from promedical.evaluation.scoring import crossed_difference

    same = crossed_difference([[0.0, 0.0, 0.0]] * 3)
    assert (same.value, same.low, same.high, same.se, same.detectable) == (0, 0, 0, 0, 0)
    assert not same.excludes_zero()
    d = crossed_difference([[1.0, 0.0], [1.0, 1.0]])          # mean of the four differences
    assert d.value == 0.75 and 0.0 <= d.low <= d.value <= d.high <= 1.0 and d.seeds == d.prompts == 2


def test_crossed_difference_finds_a_real_effect_and_sizes_the_detectable_one():
    from promedical.evaluation.scoring import Z_POWER_80, Z_TWO_SIDED_95, crossed_difference

    rng = np.random.default_rng(1)
    shifted = rng.normal(0.3, 0.5, size=(3, 80))              # 3 seeds x 80 prompts, true difference 0.3
    found = crossed_difference(shifted)
    assert found.excludes_zero() and found.low > 0
    assert found.detectable == pytest.approx((Z_TWO_SIDED_95 + Z_POWER_80) * found.se)
    assert 0.025 < found.se < 0.06                            # about 0.5 / sqrt(240) = 0.032, plus the seed term
    small = crossed_difference(shifted[:, :8] - 0.3)          # no effect, few prompts: not found, wider
    assert not small.excludes_zero() and small.detectable > found.detectable
    one_seed = crossed_difference(shifted[:1])
    assert one_seed.seeds == 1 and one_seed.low < one_seed.value < one_seed.high


def test_crossed_difference_leaves_unscored_prompts_out_and_refuses_a_flat_list():
    from promedical.evaluation.scoring import crossed_difference

    assert crossed_difference([[1.0, float("nan")], [1.0, 1.0]]).value == 1.0
    with pytest.raises(ValueError, match="seeds x prompts"):
        crossed_difference([1.0, 2.0])
