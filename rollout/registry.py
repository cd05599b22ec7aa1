"""Names of the variants a config may choose, gathered for validation without importing torch."""
from __future__ import annotations

ADVANTAGES = ("grpo", "drgrpo")
KL_ESTIMATORS = ("k1", "k2", "k3")
LOSS_AGGREGATIONS = ("token_mean", "seq_mean")
