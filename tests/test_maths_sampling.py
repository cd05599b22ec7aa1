"""Dynamic sampling (which groups are informative) and the soft overlong penalty, hand-worked; the
penalty kept inside the veto bands (veto_banded) checked on random promedical rewards."""
import numpy as np
import pytest

from promedical.reward.aggregate import RewardShape, promedical
from promedical.rollout import registry
from promedical.rollout.sampling import (OVERLONG_MODES, choose_groups, informative_groups, soft_overlong_penalty,
                                         veto_banded)


def test_informative_groups_drop_constant_ones_in_order_of_appearance():
    # group 9: 0.1 x3 (constant, even though 0.1 is inexact); group 3: 0, 1; group 7: 0.5, 0.5; group 1: 1, 0.2
    rewards = np.array([0.1, 0.1, 0.1, 0.0, 1.0, 0.5, 0.5, 1.0, 0.2])
    groups = np.array([9, 9, 9, 3, 3, 7, 7, 1, 1])
    assert informative_groups(rewards, groups).tolist() == [3, 1]


def test_informative_groups_with_interleaved_rows():
    assert informative_groups(np.array([1.0, 2.0, 1.0, 2.0]), np.array([4, 5, 4, 5])).tolist() == []
    assert informative_groups(np.array([1.0, 2.0, 3.0, 2.0]), np.array([4, 5, 4, 5])).tolist() == [4]


def test_choose_groups_fills_the_shortfall_with_uninformative_groups():
    assert choose_groups([3, 1, 8], [9, 7], wanted=2) == ([3, 1], 0)
    assert choose_groups([3], [9, 7], wanted=3) == ([3, 9, 7], 2)


def test_soft_overlong_penalty_is_linear_over_the_buffer():
    # budget L = 20, buffer B = 4: no penalty up to 16, then (16 - len)/4: 17 -> -0.25, 18 -> -0.5, 20 -> -1
    out = soft_overlong_penalty(np.array([5, 16, 17, 18, 20]), max_new_tokens=20, buffer=4)
    np.testing.assert_allclose(out, [0.0, 0.0, -0.25, -0.5, -1.0])
    assert soft_overlong_penalty(np.array([21]), max_new_tokens=20, buffer=4).tolist() == [-1.0]


def test_soft_overlong_penalty_rejects_a_buffer_beyond_the_budget():
    with pytest.raises(ValueError, match="buffer=30"):
        soft_overlong_penalty(np.array([1]), max_new_tokens=20, buffer=30)


def test_registry_names_match():
    assert OVERLONG_MODES == registry.OVERLONG_MODES


def _promedical_rewards(rng, n, shape):
    """n promedical rewards of random rubrics (2 proficiency, 1 bonus, 2 veto criteria) and their S3."""
    tiers, weights = ["proficiency", "proficiency", "bonus", "veto", "veto"], [1.0, 2.0, 0.0, 0.0, 0.0]
    scores = [promedical(rng.random(5) * [1, 1, 1, 0.8, 0.8], tiers, weights, shape) for _ in range(n)]
    return np.array([s.reward for s in scores]), np.array([s.s3 for s in scores])


def test_soft_penalty_inside_the_veto_bands_keeps_every_safe_response_above_every_vetoed_one():
    shape, rng = RewardShape(), np.random.default_rng(0)
    reward, s3 = _promedical_rewards(rng, 400, shape)
    penalty = soft_overlong_penalty(rng.integers(1, 65, 400), max_new_tokens=64, buffer=16)
    # and two rows by hand: a safe response of reward 0.3 cut at the budget, the best possible vetoed one
    reward, s3, penalty = np.append(reward, [0.3, 1.5 - shape.lam]), np.append(s3, [0, 1]), np.append(penalty, [-1, 0])
    assert 0 < (s3 > 0).mean() < 1 and (penalty == -1).any()
    shaped = veto_banded(reward, penalty, s3, shape.lam)
    for k in range(int(s3.max())):                  # fewer violations: strictly above, after shaping too
        assert shaped[s3 == k].min() > shaped[s3 > k].max()
        assert reward[s3 == k].min() > reward[s3 > k].max()
    np.testing.assert_allclose(shaped[penalty == 0], reward[penalty == 0])   # no penalty: unchanged
    assert (shaped <= reward + 1e-12).all()
    plain = reward + penalty                         # DAPO's plain sum breaks the guarantee on the same rows
    assert plain[s3 == 0].min() < plain[s3 > 0].max()


def test_soft_shaping_is_veto_banded_for_promedical_and_refused_for_lexicographic():
    from promedical.deploy.config import load_config
    from promedical.deploy.run import _settings
    from promedical.errors import UserError

    cfg = load_config("tiny", ["rollout.overlong=soft", "reward.aggregator=promedical", "reward.lam=2.5"])
    assert _settings(cfg).veto_lam == 2.5
    assert _settings(load_config("tiny", ["rollout.overlong=soft", "reward.aggregator=gdpo"])).veto_lam is None
    with pytest.raises(UserError, match="rollout.overlong=soft with reward.aggregator=lexicographic"):
        load_config("tiny", ["rollout.overlong=soft", "reward.aggregator=lexicographic"])
