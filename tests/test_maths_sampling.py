"""Dynamic sampling (which groups are informative) and the soft overlong penalty, hand-worked."""
import numpy as np
import pytest

from promedical.rollout import registry
from promedical.rollout.sampling import OVERLONG_MODES, choose_groups, informative_groups, soft_overlong_penalty


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
