"""Names of the variants a config may choose, gathered for validation without importing torch.

Each tuple mirrors a registry of a pure module (tests check they agree): advantages and group stds
(rollout/advantages.py), KL estimators and loss aggregations (actors/losses.py), overlong handling
(rollout/sampling.py); learning-rate schedules live in actors/schedules.py (no torch) and reward
aggregators in reward/aggregate.py.
"""
from __future__ import annotations

ADVANTAGES = ("grpo", "drgrpo", "rloo")
STDS = ("sample", "population")
KL_ESTIMATORS = ("k1", "k2", "k3")
LOSS_AGGREGATIONS = ("token_mean", "seq_mean_token_mean", "seq_mean", "seq_mean_token_sum",
                     "seq_mean_token_sum_norm")
OVERLONG_MODES = ("none", "filter", "soft")
