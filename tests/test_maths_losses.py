"""GRPO loss, KL estimators and aggregation on hand-worked numbers."""
import math

import pytest
import torch

from promedical.rollout import registry
from promedical.actors.losses import (KL_ESTIMATORS, LOSS_AGGREGATIONS, grpo_loss, kl_k1, kl_k2, kl_k3,
                                       seq_mean, token_mean)


def test_kl_estimators_hand_worked():
    logp, ref = torch.tensor([0.0]), torch.tensor([-1.0])
    # log(pi/ref) = 1
    assert kl_k1(logp, ref).item() == pytest.approx(1.0)
    assert kl_k2(logp, ref).item() == pytest.approx(0.5)
    # k3 = e^-1 - (-1) - 1 = e^-1
    assert kl_k3(logp, ref).item() == pytest.approx(math.exp(-1))
    assert kl_k3(torch.tensor([0.3]), torch.tensor([0.3])).item() == 0.0


def test_aggregations_differ_on_ragged_sequences():
    values = torch.tensor([[1.0, 1.0, 1.0], [4.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    # token mean: (1+1+1+4)/4 = 1.75; sequence mean: (1 + 4)/2 = 2.5
    assert token_mean(values, mask).item() == pytest.approx(1.75)
    assert seq_mean(values, mask).item() == pytest.approx(2.5)


def _loss(logp, old, adv, **kw):
    z = torch.zeros_like(logp)
    mask = torch.ones_like(logp)
    args = dict(clip_eps=0.2, kl_coef=0.0, tis_cap=2.0)
    args.update(kw)
    return grpo_loss(logp, old, old, z if "ref" not in kw else kw.pop("ref"), adv, mask, **args)


def test_ratio_clipped_for_positive_advantage():
    # ratio = e^1 ~ 2.718 with A = +1: min(2.718, clip to 1.2) = 1.2 -> loss -1.2, token clipped
    terms = _loss(torch.tensor([[1.0]]), torch.tensor([[0.0]]), torch.tensor([1.0]))
    assert terms.policy_loss.item() == pytest.approx(-1.2)
    assert terms.clip_fraction.item() == 1.0


def test_ratio_not_clipped_for_negative_advantage_when_ratio_high():
    # ratio e with A = -1: min(-e, -1.2) = -e -> loss +e (pessimistic bound keeps the unclipped term)
    terms = _loss(torch.tensor([[1.0]]), torch.tensor([[0.0]]), torch.tensor([-1.0]))
    assert terms.policy_loss.item() == pytest.approx(math.e, rel=1e-5)


def test_on_policy_gradient_is_advantage_weighted_logprob():
    logp = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    terms = _loss(logp, logp.detach().clone(), torch.tensor([0.5]))
    terms.loss.backward()
    # d(-ratio*A)/dlogp = -A * ratio = -0.5 per token, token_mean over 2 tokens -> -0.25 each
    torch.testing.assert_close(logp.grad, torch.tensor([[-0.25, -0.25]]))


def test_truncated_importance_weight_caps_stale_rows():
    # behaviour logprob much lower than the proximal one: weight exp(0 - (-5)) capped at tis_cap = 2
    logp = torch.tensor([[0.0]])
    z = torch.zeros_like(logp)
    terms = grpo_loss(logp, logp, torch.tensor([[-5.0]]), z, torch.tensor([1.0]), torch.ones_like(logp),
                      clip_eps=0.2, kl_coef=0.0, tis_cap=2.0)
    assert terms.policy_loss.item() == pytest.approx(-2.0)


def test_kl_term_added_with_coefficient():
    logp = torch.tensor([[0.0]])
    terms = grpo_loss(logp, logp, logp, torch.tensor([[-1.0]]), torch.tensor([0.0]), torch.ones_like(logp),
                      clip_eps=0.2, kl_coef=0.5, tis_cap=2.0, kl_estimator="k1")
    assert terms.kl.item() == pytest.approx(1.0)
    assert terms.loss.item() == pytest.approx(0.5)


def test_registry_names_match():
    assert set(KL_ESTIMATORS) == set(registry.KL_ESTIMATORS)
    assert set(LOSS_AGGREGATIONS) == set(registry.LOSS_AGGREGATIONS)
