"""GRPO, Dr.GRPO and RLOO advantages on hand-worked numbers; constant groups give exactly 0."""
import numpy as np
import pytest

from promedical.rollout import registry
from promedical.rollout.advantages import ADVANTAGES, STDS, drgrpo, grpo, rloo

REWARDS = np.array([1.0, 3.0, 0.0, 0.0, 6.0])
GROUPS = np.array([0, 0, 1, 1, 1])


def test_grpo_divides_by_the_sample_std_by_default():
    # group 0: 1, 3 -> mean 2, sample std sqrt((1 + 1) / 1) = sqrt2 -> -1/sqrt2, +1/sqrt2
    # group 1: 0, 0, 6 -> mean 2, sample var (4 + 4 + 16) / 2 = 12, std 2*sqrt3 -> -1/sqrt3, -1/sqrt3, 2/sqrt3
    s2, s3 = np.sqrt(2.0), np.sqrt(3.0)
    np.testing.assert_allclose(grpo(REWARDS, GROUPS), [-1 / s2, 1 / s2, -1 / s3, -1 / s3, 2 / s3], rtol=1e-5)


def test_grpo_population_std_on_request():
    # group 0: population std 1 -> -1, +1; group 1: std sqrt(24 / 3) = sqrt8 -> -2/sqrt8, -2/sqrt8, 4/sqrt8
    s8 = np.sqrt(8.0)
    np.testing.assert_allclose(grpo(REWARDS, GROUPS, std="population"), [-1, 1, -2 / s8, -2 / s8, 4 / s8],
                               rtol=1e-5)


def test_sample_over_population_is_sqrt_n_over_n_minus_1():
    # the figures: 1.41x larger with population std for groups of 2, 1.07x for groups of 8
    rng = np.random.default_rng(0)
    for g, ratio in ((2, np.sqrt(2)), (8, np.sqrt(8 / 7))):
        r = rng.normal(size=g)
        ids = np.zeros(g, dtype=int)
        np.testing.assert_allclose(grpo(r, ids, std="population") / grpo(r, ids), ratio, rtol=1e-4)
    assert round(np.sqrt(8 / 7), 2) == 1.07 and round(np.sqrt(2), 2) == 1.41


def test_drgrpo_subtracts_mean_only():
    np.testing.assert_allclose(drgrpo(REWARDS, GROUPS), [-1, 1, -2, -2, 4])


def test_rloo_subtracts_the_mean_of_the_other_samples():
    # group 0: 1 - 3 = -2, 3 - 1 = 2; group 1: 0 - (0 + 6)/2 = -3, -3, 6 - (0 + 0)/2 = 6
    np.testing.assert_allclose(rloo(REWARDS, GROUPS), [-2, 2, -3, -3, 6])


@pytest.mark.parametrize("name", sorted(ADVANTAGES))
@pytest.mark.parametrize("std", STDS)
def test_constant_group_of_point_one_gives_exactly_zero(name, std):
    # 0.1 is not exact in binary: r - mean(r) is -1.4e-17 and grpo used to return -1.4e-11 per row
    rewards = np.array([0.1, 0.1, 0.1])
    assert (rewards - rewards.mean() != 0).all()
    adv = ADVANTAGES[name](rewards, np.array([4, 4, 4]), std=std)
    assert adv.tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("name", sorted(ADVANTAGES))
def test_zero_advantage_rows_count_every_constant_group(name):
    # three groups, two constant (0.1s and 0.7s): two thirds of the rows carry no signal
    rewards = np.array([0.1, 0.1, 0.1, 0.7, 0.7, 0.7, 0.0, 1.0, 0.2])
    adv = ADVANTAGES[name](rewards, np.repeat([0, 1, 2], 3))
    assert np.mean(adv == 0.0) == pytest.approx(2 / 3)
    assert adv[6] < 0 < adv[7]


def test_groups_need_not_be_contiguous():
    # groups 2: (1, 3), 4: (5, 9); sample std sqrt2 and sqrt8
    adv = grpo(np.array([1.0, 5.0, 3.0, 9.0]), np.array([2, 4, 2, 4]))
    np.testing.assert_allclose(adv, np.array([-1, -1, 1, 1]) / np.sqrt(2), rtol=1e-5)


def test_group_of_one_is_constant():
    for fn in (grpo, drgrpo, rloo):
        assert fn(np.array([0.3, 1.0, 2.0]), np.array([0, 1, 1]))[0] == 0.0


def test_registry_names_match_functions():
    assert tuple(ADVANTAGES) == registry.ADVANTAGES
    assert STDS == registry.STDS
