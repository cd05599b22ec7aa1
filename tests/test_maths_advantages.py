"""GRPO and Dr.GRPO advantages on hand-worked numbers, zero-variance groups included."""
import numpy as np
import pytest

from promedical.rollout.advantages import ADVANTAGES, drgrpo, grpo
from promedical.rollout.registry import ADVANTAGES as ADVANTAGE_NAMES


def test_grpo_normalises_within_each_group():
    # group 0: rewards 1, 3 -> mean 2, population std 1 -> advantages -1, +1
    # group 1: rewards 0, 0, 6 -> mean 2, std sqrt((4+4+16)/3) = sqrt(8) -> -2/sqrt8, -2/sqrt8, 4/sqrt8
    adv = grpo(np.array([1.0, 3.0, 0.0, 0.0, 6.0]), np.array([0, 0, 1, 1, 1]))
    s8 = np.sqrt(8.0)
    np.testing.assert_allclose(adv, [-1, 1, -2 / s8, -2 / s8, 4 / s8], rtol=1e-5)


def test_drgrpo_subtracts_mean_only():
    adv = drgrpo(np.array([1.0, 3.0, 0.0, 0.0, 6.0]), np.array([0, 0, 1, 1, 1]))
    np.testing.assert_allclose(adv, [-1, 1, -2, -2, 4])


@pytest.mark.parametrize("name", ["grpo", "drgrpo"])
def test_zero_variance_group_gets_exactly_zero(name):
    # group 7 all rewards equal: no signal, advantage exactly 0 (not 0/eps noise)
    adv = ADVANTAGES[name](np.array([0.5, 0.5, 0.5, 1.0, 0.0]), np.array([7, 7, 7, 8, 8]))
    assert (adv[:3] == 0.0).all()
    assert adv[3] > 0 > adv[4]


def test_groups_need_not_be_contiguous():
    adv = grpo(np.array([1.0, 5.0, 3.0, 9.0]), np.array([2, 4, 2, 4]))
    np.testing.assert_allclose(adv, [-1, -1, 1, 1], rtol=1e-5)


def test_registry_names_match_functions():
    assert set(ADVANTAGES) == set(ADVANTAGE_NAMES)
