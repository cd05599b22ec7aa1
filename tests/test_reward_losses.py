"""Hand-worked numbers: the reward-model pair loss with its anchor term, and the scalar aggregator."""
import math

import pytest
import torch

from promedical.reward.aggregate import RewardShape, promedical, scalar
from promedical.reward_model.rm_train import pair_loss


def test_pair_loss_is_bradley_terry_without_anchor():
    loss = pair_loss(torch.tensor([2.0]), torch.tensor([0.0]), 0.0)
    assert float(loss) == pytest.approx(math.log(1 + math.exp(-2)))          # 0.126928


def test_anchor_pins_winners_above_and_losers_below_zero():
    w, l = torch.tensor([2.0, -1.0]), torch.tensor([0.0, -3.0])
    bt = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-2))) / 2      # both margins are 2
    anchor = (math.log(1 + math.exp(-2)) + math.log(2) + math.log(1 + math.exp(1)) + math.log(1 + math.exp(-3))) / 2
    assert float(pair_loss(w, l, 0.5)) == pytest.approx(bt + 0.5 * anchor)
    # same margins, but the second pair sits on the wrong side of 0: only the anchor tells them apart
    shifted = pair_loss(w + 3.0, l + 3.0, 0.5)
    assert float(pair_loss(w + 3.0, l + 3.0, 0.0)) == pytest.approx(bt)
    assert float(shifted) != pytest.approx(float(pair_loss(w, l, 0.5)))


def test_scalar_aggregator_is_the_mean_v_of_proficiency_and_bonus():
    values, tiers, weights = [0.8, 0.4, 1.0, 0.9], ["proficiency", "proficiency", "bonus", "veto"], [3.0, 1.0, 0, 0]
    got = scalar(values, tiers, weights, RewardShape())
    assert got.reward == pytest.approx((0.8 + 0.4 + 1.0) / 3)                # veto ignored, weights ignored
    full = promedical(values, tiers, weights, RewardShape())
    assert (got.s1, got.s2, got.s3) == (full.s1, full.s2, full.s3) == (pytest.approx(0.7), 1.0, 1.0)
