"""GRPO loss, clipping variants, KL estimators and loss aggregations on hand-worked numbers."""
import math

import pytest
import torch

from promedical.actors.losses import (KL_ESTIMATORS, LOSS_AGGREGATIONS, METRICS, LossSettings, LossTerms,
                                      grpo_loss, keep_mask, kl_k1, kl_k2, kl_k3, micro_batch_share,
                                      seq_mean_token_mean, seq_mean_token_sum, seq_mean_token_sum_norm,
                                      token_mean)
from promedical.rollout import registry

E = math.e


def test_kl_estimators_hand_worked():
    logp, ref = torch.tensor([0.0]), torch.tensor([-1.0])
    # log(pi/ref) = 1
    assert kl_k1(logp, ref).item() == pytest.approx(1.0)
    assert kl_k2(logp, ref).item() == pytest.approx(0.5)
    # k3 = e^-1 - (-1) - 1 = e^-1
    assert kl_k3(logp, ref).item() == pytest.approx(math.exp(-1))
    assert kl_k3(torch.tensor([0.3]), torch.tensor([0.3])).item() == 0.0


def test_aggregations_on_ragged_sequences():
    values = torch.tensor([[1.0, 1.0, 1.0], [4.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    # token mean: (1+1+1+4)/4 = 1.75; seq mean of token means: (1 + 4)/2 = 2.5
    assert token_mean(values, mask).item() == pytest.approx(1.75)
    assert seq_mean_token_mean(values, mask).item() == pytest.approx(2.5)
    # seq mean of token sums: (3 + 4)/2 = 3.5; Dr. GRPO divides that by the constant budget, 4 -> 0.875
    assert seq_mean_token_sum(values, mask).item() == pytest.approx(3.5)
    assert seq_mean_token_sum_norm(values, mask, 4.0).item() == pytest.approx(0.875)
    assert LOSS_AGGREGATIONS["seq_mean"] is seq_mean_token_mean


def _terms(logp, adv, old=None, mask=None, **kw) -> LossTerms:
    logp = torch.tensor(logp)
    old = torch.zeros_like(logp) if old is None else torch.tensor(old)
    mask = torch.ones_like(logp) if mask is None else torch.tensor(mask)
    settings = LossSettings(**{"kl_coef": 0.0, **kw})
    return grpo_loss(logp, old, old, torch.zeros_like(logp), torch.tensor(adv), mask, settings=settings)


def test_ratio_clipped_for_positive_advantage():
    # ratio = e ~ 2.718 with A = +1: min(2.718, clip to 1.2) = 1.2 -> loss -1.2; the clip changed it
    terms = _terms([[1.0]], [1.0])
    assert terms.policy_loss.item() == pytest.approx(-1.2)
    assert terms.clip_fraction.item() == 1.0 and terms.ratio_outside_clip_fraction.item() == 1.0


def test_high_ratio_with_negative_advantage_is_outside_but_not_clipped():
    # ratio e with A = -1: max(-(-1)e, -(-1)1.2) = e -> loss +e (the pessimistic bound keeps the unclipped
    # term): the ratio lies outside [0.8, 1.2] yet the clip did not change the objective
    terms = _terms([[1.0]], [-1.0])
    assert terms.policy_loss.item() == pytest.approx(E, rel=1e-6)
    assert terms.clip_fraction.item() == 0.0 and terms.ratio_outside_clip_fraction.item() == 1.0


def test_clip_fraction_counts_only_tokens_where_the_clip_changed_the_objective():
    # tokens: (ratio e, A+) clipped; (ratio e, A-) outside only; (ratio 1, A+) inside; (ratio 1/e, A+) outside only
    terms = _terms([[1.0], [1.0], [0.0], [-1.0]], [1.0, -1.0, 1.0, 1.0])
    assert terms.clip_fraction.item() == pytest.approx(1 / 4)
    assert terms.ratio_outside_clip_fraction.item() == pytest.approx(3 / 4)


def test_asymmetric_clip_uses_the_higher_ceiling():
    # clip-higher: ratio e with A = +1 is capped at 1 + 0.28 -> loss -1.28
    assert _terms([[1.0]], [1.0], clip_eps_low=0.2, clip_eps_high=0.28).policy_loss.item() == pytest.approx(-1.28)
    # ratio 1/e with A = -1: max(0.368, 1 - 0.1 = 0.9) = 0.9, clipped at the floor
    terms = _terms([[-1.0]], [-1.0], clip_eps_low=0.1, clip_eps_high=0.28)
    assert terms.policy_loss.item() == pytest.approx(0.9)
    assert terms.clip_fraction.item() == 1.0


def test_dual_clip_caps_negative_advantage_tokens():
    # ratio e^2 = 7.39 with A = -1: max(7.39, 1.2) = 7.39, capped at -c * A = 3 -> loss 3, no gradient
    logp = torch.tensor([[2.0]], requires_grad=True)
    z = torch.zeros_like(logp)
    terms = grpo_loss(logp, z, z, z, torch.tensor([-1.0]), torch.ones_like(z),
                      settings=LossSettings(kl_coef=0.0, dual_clip=3.0))
    assert terms.policy_loss.item() == pytest.approx(3.0)
    assert terms.dual_clip_fraction.item() == 1.0 and terms.clip_fraction.item() == 0.0
    terms.loss.backward()
    assert logp.grad.item() == 0.0
    # ratio e = 2.718 < 3: the cap does not bind; positive advantages are never capped
    assert _terms([[1.0]], [-1.0], dual_clip=3.0).policy_loss.item() == pytest.approx(E, rel=1e-6)
    assert _terms([[2.0]], [1.0], dual_clip=3.0).policy_loss.item() == pytest.approx(-1.2)


def test_on_policy_gradient_is_advantage_weighted_logprob():
    logp = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    old = logp.detach().clone()
    terms = grpo_loss(logp, old, old, old, torch.tensor([0.5]), torch.ones_like(old),
                      settings=LossSettings(kl_coef=0.0))
    terms.loss.backward()
    # d(-ratio*A)/dlogp = -A * ratio = -0.5 per token, token_mean over 2 tokens -> -0.25 each
    torch.testing.assert_close(logp.grad, torch.tensor([[-0.25, -0.25]]))


def test_truncated_importance_weight_caps_stale_rows():
    # behaviour logprob much lower than the proximal one: weight exp(0 - (-5)) capped at tis_cap = 2
    logp = torch.tensor([[0.0]])
    terms = grpo_loss(logp, logp, torch.tensor([[-5.0]]), logp, torch.tensor([1.0]), torch.ones_like(logp),
                      settings=LossSettings(kl_coef=0.0, tis_cap=2.0))
    assert terms.policy_loss.item() == pytest.approx(-2.0)


def test_kl_term_added_with_coefficient():
    logp = torch.tensor([[0.0]])
    terms = grpo_loss(logp, logp, logp, torch.tensor([[-1.0]]), torch.tensor([0.0]), torch.ones_like(logp),
                      settings=LossSettings(kl_coef=0.5, kl_estimator="k1"))
    assert terms.kl.item() == pytest.approx(1.0)
    assert terms.loss.item() == pytest.approx(0.5)


def test_entropy_is_the_token_mean_over_the_mask():
    logp = torch.zeros(1, 2)
    entropy = torch.tensor([[0.5, 1.5]])
    full = grpo_loss(logp, logp, logp, logp, torch.tensor([1.0]), torch.ones(1, 2), settings=LossSettings(),
                     entropy=entropy)
    half = grpo_loss(logp, logp, logp, logp, torch.tensor([1.0]), torch.tensor([[1.0, 0.0]]),
                     settings=LossSettings(), entropy=entropy)
    assert full.entropy.item() == pytest.approx(1.0) and half.entropy.item() == pytest.approx(0.5)


def test_truncated_rows_leave_the_loss_when_masked():
    # row 0 stopped (ratio e, A+: -1.2), row 1 was cut at the budget (A-: would add +e)
    keep = keep_mask(["stop", "length"], mask_truncated=True)
    assert keep.tolist() == [1.0, 0.0] and keep_mask(["stop", "length"], False).tolist() == [1.0, 1.0]
    mask = torch.ones(2, 1) * keep.unsqueeze(-1)
    terms = _terms([[1.0], [1.0]], [1.0, -1.0], mask=mask.tolist())
    assert terms.policy_loss.item() == pytest.approx(-1.2)


def test_micro_batch_share_by_tokens_or_sequences():
    # 6 of a mini-batch's 24 tokens, 2 of its 5 rows
    assert micro_batch_share("token_mean", 6, 24, 2, 5) == 0.25
    for name in ("seq_mean", "seq_mean_token_mean", "seq_mean_token_sum", "seq_mean_token_sum_norm"):
        assert micro_batch_share(name, 6, 24, 2, 5) == 0.4


def test_loss_terms_carry_every_metric():
    assert set(METRICS) == set(LossTerms.__dataclass_fields__)


def test_registry_names_match():
    assert tuple(KL_ESTIMATORS) == registry.KL_ESTIMATORS
    assert tuple(LOSS_AGGREGATIONS) == registry.LOSS_AGGREGATIONS


def test_entropy_of_the_forward_pass_hand_worked():
    # uniform logits over 4 tokens -> log 4; one dominant logit -> ~0
    from promedical.actors.logprobs import _entropy
    uniform = torch.zeros(1, 4)
    peaked = torch.tensor([[50.0, 0.0, 0.0, 0.0]])
    assert _entropy(uniform).item() == pytest.approx(math.log(4))
    assert _entropy(peaked).item() == pytest.approx(0.0, abs=1e-12)
    # two tokens with p = (0.75, 0.25): -(0.75 ln 0.75 + 0.25 ln 0.25)
    two = torch.log(torch.tensor([[0.75, 0.25]]))
    assert _entropy(two).item() == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
