"""GRPO policy loss, KL estimators and loss aggregation. Pure torch.

Shapes: logprobs, old/ref/behaviour logprobs, entropy and mask are (N, T) over response tokens;
advantages (N,).
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


def token_mean(values: torch.Tensor, mask: torch.Tensor, norm: float = 1.0) -> torch.Tensor:
    """Sum over every response token in the batch / number of tokens (DAPO; verl's token-mean)."""
    return (values * mask).sum() / mask.sum().clamp(min=1)


def seq_mean_token_mean(values: torch.Tensor, mask: torch.Tensor, norm: float = 1.0) -> torch.Tensor:
    """Mean over each sequence's tokens, then over sequences (the original GRPO)."""
    per_seq = (values * mask).sum(-1) / mask.sum(-1).clamp(min=1)
    return per_seq.mean()


def seq_mean_token_sum(values: torch.Tensor, mask: torch.Tensor, norm: float = 1.0) -> torch.Tensor:
    """Sum over each sequence's tokens, then mean over sequences (longer responses weigh more)."""
    return (values * mask).sum(-1).mean()


def seq_mean_token_sum_norm(values: torch.Tensor, mask: torch.Tensor, norm: float = 1.0) -> torch.Tensor:
    """Dr. GRPO: each sequence's token sum / a constant `norm` (the generation budget), then mean over
    sequences; no length-dependent normaliser, so no length bias."""
    return (values * mask).sum(-1).mean() / norm


# seq_mean is today's name for seq_mean_token_mean, kept as an alias
LOSS_AGGREGATIONS: dict[str, Callable[..., torch.Tensor]] = {
    "token_mean": token_mean, "seq_mean_token_mean": seq_mean_token_mean, "seq_mean": seq_mean_token_mean,
    "seq_mean_token_sum": seq_mean_token_sum, "seq_mean_token_sum_norm": seq_mean_token_sum_norm}
TOKEN_WEIGHTED = frozenset({"token_mean"})   # the rest weigh every sequence of a mini-batch equally

KL_ESTIMATORS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "k1": kl_k1, "k2": kl_k2, "k3": kl_k3}


def micro_batch_share(aggregation: str, tokens: float, mini_tokens: float, rows: int, mini_rows: int) -> float:
    """Weight of one micro-batch's loss in its mini-batch, so the micro-batches add up to the mini-batch
    aggregate: its share of the tokens for token_mean, of the sequences otherwise."""
    if aggregation in TOKEN_WEIGHTED:
        return tokens / max(mini_tokens, 1.0)
    return rows / max(mini_rows, 1)


@dataclass(frozen=True)
class LossSettings:
    """Hyper-parameters of the policy loss, built from algo.* and rollout.* by deploy/build.py."""

    clip_eps_low: float = 0.2        # ratio floor 1 - low (for A < 0)
    clip_eps_high: float = 0.2       # ratio ceiling 1 + high (for A > 0); DAPO's clip-higher raises it
    dual_clip: float | None = None   # c > 1: for A < 0 the per-token loss is capped at -c * A (dual-clip PPO)
    kl_coef: float = 0.04
    kl_estimator: str = "k3"
    loss_agg: str = "token_mean"
    tis_cap: float = 2.0             # truncated importance-sampling cap for off-policy rows
    norm: float = 1.0                # seq_mean_token_sum_norm's constant: rollout.max_new_tokens
    mask_truncated: bool = False     # rollout.overlong=filter: rows cut at the budget leave the loss


METRICS = ("loss", "policy_loss", "kl", "clip_fraction", "dual_clip_fraction", "ratio_outside_clip_fraction",
           "entropy")


@dataclass
class LossTerms:
    loss: torch.Tensor              # scalar to backpropagate
    policy_loss: torch.Tensor       # scalar, detached
    kl: torch.Tensor                # scalar, detached: aggregated KL estimate
    clip_fraction: torch.Tensor     # detached: share of tokens where the ratio clip changed the objective
    dual_clip_fraction: torch.Tensor  # detached: share of tokens where the dual-clip cap changed it
    ratio_outside_clip_fraction: torch.Tensor  # detached: share with ratio outside [1 - low, 1 + high]
    entropy: torch.Tensor           # detached: token-mean policy entropy (0 when not given)


def grpo_loss(logp: torch.Tensor, old_logp: torch.Tensor, behaviour_logp: torch.Tensor,
              ref_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, *,
              settings: LossSettings, entropy: torch.Tensor | None = None) -> LossTerms:
    """Clipped-ratio GRPO loss with KL to the reference and truncated importance sampling.

    ratio = pi / pi_old, where pi_old is the policy's own logprob before this step's updates (the
    proximal policy). Rows made by an older generator version are reweighted by the truncated IS
    weight min(pi_old / mu, tis_cap), mu being the behaviour (generator) logprob: the decoupled
    off-policy correction. On-policy rows have pi_old == mu up to numerics, so the weight is ~1.
    Per token: loss = -min(ratio * A, clip(ratio, 1 - low, 1 + high) * A), then for A < 0 and a
    dual clip c: min(loss, -c * A).
    """
    s = settings
    ratio = torch.exp(logp - old_logp)
    adv = advantages.unsqueeze(-1)
    unclipped = -ratio * adv
    clipped = -ratio.clamp(1.0 - s.clip_eps_low, 1.0 + s.clip_eps_high) * adv
    per_token = torch.maximum(unclipped, clipped)
    clip_changed = clipped > unclipped
    dual_changed = torch.zeros_like(clip_changed)
    if s.dual_clip is not None:
        cap = -s.dual_clip * adv
        dual_changed = (adv < 0) & (per_token > cap)
        per_token = torch.where(adv < 0, torch.minimum(per_token, cap), per_token)
    is_weight = torch.exp(old_logp - behaviour_logp).clamp(max=s.tis_cap).detach()
    per_token = per_token * is_weight
    aggregate = LOSS_AGGREGATIONS[s.loss_agg]
    kl = KL_ESTIMATORS[s.kl_estimator](logp, ref_logp)
    policy_loss = aggregate(per_token, mask, s.norm)
    kl_term = aggregate(kl, mask, s.norm)
    outside = (ratio < 1.0 - s.clip_eps_low) | (ratio > 1.0 + s.clip_eps_high)
    share = lambda flags: token_mean(flags.float(), mask).detach()  # noqa: E731
    return LossTerms(loss=policy_loss + s.kl_coef * kl_term, policy_loss=policy_loss.detach(),
                     kl=kl_term.detach(), clip_fraction=share(clip_changed),
                     dual_clip_fraction=share(dual_changed), ratio_outside_clip_fraction=share(outside),
                     entropy=torch.zeros(()) if entropy is None else token_mean(entropy.detach(), mask))


def keep_mask(finish_reasons: list[str], mask_truncated: bool) -> torch.Tensor:
    """(N,) 1.0 for rows that stay in the loss; 0.0 for rows cut at the budget when mask_truncated."""
    return torch.tensor([0.0 if mask_truncated and f == "length" else 1.0 for f in finish_reasons])
