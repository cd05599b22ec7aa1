"""Our estimators against independent reference formulas (plain Python loops) on random inputs.

The references are written from the definitions (GRPO, RLOO, PPO clip with clip-higher and dual clip as
verl/TRL/OpenRLHF define them, the four loss aggregations), not from our vectorised code.
"""
import math
import statistics

import numpy as np
import pytest
import torch

from promedical.actors.losses import LossSettings, grpo_loss
from promedical.rollout.advantages import ADVANTAGES


def _ref_advantage(name: str, rewards: list[float], groups: list[int], std: str) -> list[float]:
    out = []
    for i, g in enumerate(groups):
        mine = [r for r, h in zip(rewards, groups) if h == g]
        if max(mine) == min(mine):
            out.append(0.0)
        elif name == "grpo":
            sd = statistics.stdev(mine) if std == "sample" else statistics.pstdev(mine)
            out.append((rewards[i] - statistics.fmean(mine)) / (sd + 1e-6))
        elif name == "drgrpo":
            out.append(rewards[i] - statistics.fmean(mine))
        else:   # rloo: reward minus the mean of the group's other samples
            others = [r for j, (r, h) in enumerate(zip(rewards, groups)) if h == g and j != i]
            out.append(rewards[i] - statistics.fmean(others))
    return out


@pytest.mark.parametrize("name", sorted(ADVANTAGES))
@pytest.mark.parametrize("std", ["sample", "population"])
@pytest.mark.parametrize("seed", range(5))
def test_advantages_match_reference_formulas(name, std, seed):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 9, size=6)
    groups = rng.permutation(np.repeat(np.arange(6) * 7 + 3, sizes))     # shuffled, non-contiguous ids
    rewards = rng.choice([0.0, 0.1, 0.25, 1.0], size=groups.size) + (rng.random(groups.size) < 0.5) * rng.normal(
        size=groups.size)
    rewards[groups == groups[0]] = 0.1                                    # at least one constant group
    ours = ADVANTAGES[name](rewards, groups, std=std)
    ref = _ref_advantage(name, rewards.tolist(), groups.tolist(), std)
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-12)
    assert (ours[groups == groups[0]] == 0.0).all()


def _ref_loss(logp, old, behaviour, adv, mask, s: LossSettings):
    """Per-token PPO-clip loss from its definition, then the configured aggregation, in Python floats."""
    per_tok, clipped, dual = [], [], []
    for i in range(len(logp)):
        row, row_clip, row_dual = [], [], []
        for t in range(len(logp[i])):
            ratio = math.exp(logp[i][t] - old[i][t])
            a = adv[i]
            loss1 = -a * ratio
            loss2 = -a * min(max(ratio, 1 - s.clip_eps_low), 1 + s.clip_eps_high)
            loss = max(loss1, loss2)
            row_clip.append(loss2 > loss1)
            if s.dual_clip is not None and a < 0:
                row_dual.append(loss > -a * s.dual_clip)
                loss = min(loss, -a * s.dual_clip)
            else:
                row_dual.append(False)
            row.append(loss * min(math.exp(old[i][t] - behaviour[i][t]), s.tis_cap))
        per_tok.append(row)
        clipped.append(row_clip)
        dual.append(row_dual)

    def agg(values):
        lengths = [sum(m) for m in mask]
        sums = [sum(v * m for v, m in zip(vr, mr)) for vr, mr in zip(values, mask)]
        if s.loss_agg == "token_mean":
            return sum(sums) / sum(lengths)
        if s.loss_agg in ("seq_mean", "seq_mean_token_mean"):
            return statistics.fmean(x / n for x, n in zip(sums, lengths))
        if s.loss_agg == "seq_mean_token_sum":
            return statistics.fmean(sums)
        return statistics.fmean(sums) / s.norm

    def frac(flags):
        return sum(f * m for fr, mr in zip(flags, mask) for f, m in zip(fr, mr)) / sum(map(sum, mask))
    return agg(per_tok), frac(clipped), frac(dual)


@pytest.mark.parametrize("loss_agg", ["token_mean", "seq_mean_token_mean", "seq_mean_token_sum",
                                      "seq_mean_token_sum_norm"])
@pytest.mark.parametrize("clip", [(0.2, 0.2, None), (0.2, 0.28, None), (0.1, 0.3, 3.0)])
@pytest.mark.parametrize("seed", range(3))
def test_policy_loss_matches_reference_formula(loss_agg, clip, seed):
    rng = np.random.default_rng(100 + seed)
    n, t = 8, 8
    old = rng.normal(-1.5, 0.5, size=(n, t))
    logp = old + rng.normal(0, 1.0, size=(n, t))            # ratios spread well beyond both clips
    behaviour = old + rng.normal(0, 0.3, size=(n, t))
    adv = rng.normal(size=n)
    adv[0] = 0.0
    mask = (np.arange(t)[None, :] < rng.integers(1, t + 1, size=(n, 1))).astype(float)
    low, high, dual = clip
    s = LossSettings(clip_eps_low=low, clip_eps_high=high, dual_clip=dual, kl_coef=0.0, loss_agg=loss_agg,
                     tis_cap=1.5, norm=float(t))
    as_t = lambda x: torch.tensor(x, dtype=torch.float64)   # noqa: E731
    terms = grpo_loss(as_t(logp), as_t(old), as_t(behaviour), torch.zeros(n, t, dtype=torch.float64), as_t(adv),
                      as_t(mask), settings=s)
    ref_loss, ref_clip, ref_dual = _ref_loss(logp.tolist(), old.tolist(), behaviour.tolist(), adv.tolist(),
                                             mask.tolist(), s)
    assert terms.policy_loss.item() == pytest.approx(ref_loss, rel=1e-9, abs=1e-12)
    assert terms.clip_fraction.item() == pytest.approx(ref_clip, abs=1e-12)
    assert terms.dual_clip_fraction.item() == pytest.approx(ref_dual, abs=1e-12)
    assert 0 < ref_clip < 1 and (dual is None or ref_dual > 0)   # both clips exercised
