"""GRPO policy loss, KL estimators and loss aggregation. Pure torch.

Shapes: logprobs, old/ref/behaviour logprobs and mask are (N, T) over response tokens; advantages (N,).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


def kl_k1(logp: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """k1 = log(pi/ref): unbiased, high variance, can be negative."""
    return logp - ref


def kl_k2(logp: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """k2 = 0.5 * log(pi/ref)^2: biased, low variance, >= 0."""
    return 0.5 * (logp - ref) ** 2


def kl_k3(logp: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """k3 = ref/pi - log(ref/pi) - 1: unbiased, >= 0 (Schulman's estimator, used by GRPO)."""
    log_ratio = (ref - logp).clamp(-20.0, 20.0)
    return torch.exp(log_ratio) - log_ratio - 1.0


def token_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum over every response token in the batch / number of tokens (DAPO, Dr. GRPO style)."""
    return (values * mask).sum() / mask.sum().clamp(min=1)


def seq_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over each sequence's tokens, then over sequences (the original GRPO)."""
    per_seq = (values * mask).sum(-1) / mask.sum(-1).clamp(min=1)
    return per_seq.mean()


KL_ESTIMATORS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "k1": kl_k1, "k2": kl_k2, "k3": kl_k3}
LOSS_AGGREGATIONS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "token_mean": token_mean, "seq_mean": seq_mean}


@dataclass
class LossTerms:
    loss: torch.Tensor          # scalar to backpropagate
    policy_loss: torch.Tensor   # scalar, detached
    kl: torch.Tensor            # scalar, detached: aggregated KL estimate
    clip_fraction: torch.Tensor  # scalar, detached: fraction of tokens whose ratio was clipped


def grpo_loss(logp: torch.Tensor, old_logp: torch.Tensor, behaviour_logp: torch.Tensor,
              ref_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, *,
              clip_eps: float, kl_coef: float, tis_cap: float,
              kl_estimator: str = "k3", aggregation: str = "token_mean") -> LossTerms:
    """Clipped-ratio GRPO loss with KL to the reference and truncated importance sampling.

    ratio = pi / pi_old, where pi_old is the policy's own logprob before this step's updates (the
    proximal policy). Rows made by an older generator version are reweighted by the truncated IS
    weight min(pi_old / mu, tis_cap), mu being the behaviour (generator) logprob: the decoupled
    off-policy correction. On-policy rows have pi_old == mu up to numerics, so the weight is ~1.
    """
    aggregate = LOSS_AGGREGATIONS[aggregation]
    ratio = torch.exp(logp - old_logp)
    adv = advantages.unsqueeze(-1)
    unclipped = ratio * adv
    clipped = ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * adv
    is_weight = torch.exp(old_logp - behaviour_logp).clamp(max=tis_cap).detach()
    per_token = -torch.minimum(unclipped, clipped) * is_weight
    kl = KL_ESTIMATORS[kl_estimator](logp, ref_logp)
    policy_loss = aggregate(per_token, mask)
    kl_term = aggregate(kl, mask)
    loss = policy_loss + kl_coef * kl_term
    clip_frac = token_mean(((ratio - 1.0).abs() > clip_eps).float(), mask)
    return LossTerms(loss=loss, policy_loss=policy_loss.detach(), kl=kl_term.detach(),
                     clip_fraction=clip_frac.detach())
