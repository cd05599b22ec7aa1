"""What entered one rank's policy loss in one step, token by token, written for checking (run.loss_inputs_dir).

The loss's inputs before any option acts on them: the log-ratio to the proximal policy, the log IS
weight's argument, log(pi / ref), the loss mask and each row's advantage, mini-batch and micro-batch.
A test recomputes the clip, dual-clip, IS, KL and aggregation from these, by their definitions, and
compares with the step's logged loss values (tests/test_algo_options.py). Off by default.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

ROW_KEYS = ("row_group_id", "row_index", "row_advantage", "row_mini", "row_micro")
TOKEN_KEYS = ("token_row", "log_ratio", "log_is", "log_ref_ratio", "mask")


class LossInputs:
    """Collects each micro-batch's loss inputs during a train step; `write` saves them as one .npz."""

    def __init__(self) -> None:
        self.parts: dict[str, list[np.ndarray]] = {k: [] for k in ROW_KEYS + TOKEN_KEYS}
        self.rows = 0
        self.micro = 0

    def add(self, *, group_ids: list[int], row_index: list[int], mini: int, tokens, logp, old_logp,
            behaviour_logp, ref_logp, advantages, mask) -> None:
        """One micro-batch: (N, T) tensors as the loss gets them, `tokens` 1.0 on real response tokens
        (padding is left out), (N,) advantages."""
        as_np = lambda t: t.detach().float().cpu().numpy()  # noqa: E731
        real = as_np(tokens) > 0
        logp = as_np(logp)
        values = {"log_ratio": logp - as_np(old_logp), "log_is": as_np(old_logp) - as_np(behaviour_logp),
                  "log_ref_ratio": logp - as_np(ref_logp), "mask": as_np(mask)}
        for key, value in values.items():
            self.parts[key].append(value[real].astype(np.float32))
        self.parts["token_row"].append((self.rows + np.nonzero(real)[0]).astype(np.int32))
        n = len(group_ids)
        for key, value in (("row_group_id", group_ids), ("row_index", row_index),
                           ("row_advantage", as_np(advantages)), ("row_mini", [mini] * n),
                           ("row_micro", [self.micro] * n)):
            self.parts[key].append(np.asarray(value))
        self.rows += n
        self.micro += 1

    def write(self, directory: str, step: int, rank: int) -> Path:
        path = Path(directory) / f"step-{step:04d}-rank-{rank}.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **{k: np.concatenate(v) if v else np.zeros(0) for k, v in self.parts.items()})
        return path


def read_loss_inputs(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}
