"""What one policy step trains on and what it tallies: the rows as the loss needs them, the step's sums.

`Policy.train_step` (actors/policy.py) reads a scored batch once into `StepRows`, trains mini-batch by
mini-batch, micro-batch by micro-batch, and adds each micro-batch's loss terms to a `StepTally`, which
turns into the step's metrics. Nothing here knows DeepSpeed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa


@dataclass
class StepRows:
    """The rows of one step, bad values zeroed (they leave the loss through `usable`)."""
    prompts: list[list[int]]
    responses: list[list[int]]
    lengths: list[int]
    group_ids: list[int]
    adv: np.ndarray                       # (N,) advantages, 0 where not usable
    behaviour: list[list[float]]          # sampled logprobs per response token
    ref: list[list[float]]                # reference logprobs per response token
    old: list[list[float]] | None         # proximal policy's logprobs (several mini-batches), else None
    keep: Any                             # (N,) float tensor on the model's device: overlong filter
    usable: Any                           # (N,) float tensor on the model's device: rows that may train
    usable_np: np.ndarray                 # the same as bool numpy, for counts
    kept_tokens: list[int]                # per row, the tokens that stay in the loss (overlong, bad rows)
    bad_logprobs: int                     # rows with non-finite behaviour or reference logprobs

    def padded(self, seqs: list[list[float]], rows: list[int], width: int, device) -> Any:
        return pad([seqs[i] for i in rows], width, device)


def step_rows(batch: pa.RecordBatch, keep, old: list[list[float]] | None, device) -> StepRows:
    """The step's rows from the batch's columns; `keep` is the overlong mask (actors/losses.keep_mask,
    on the host); the tensors the loss reads are copied to `device` once here."""
    import torch

    prompts = batch.column("prompt_ids").to_pylist()
    responses = batch.column("response_ids").to_pylist()
    adv = batch.column("advantage").to_numpy(zero_copy_only=False)
    ref = batch.column("ref_logprobs").to_pylist()
    behaviour = batch.column("behaviour_logprobs").to_pylist()
    # bad values never train: rows the driver masked (non-finite reward) and rows with non-finite
    # logprobs leave the loss, their values zeroed so no NaN reaches it (rollout/guards.py)
    usable, bad = usable_rows(batch.column("loss_mask").to_numpy(zero_copy_only=False), adv, behaviour, ref)
    lengths = [len(r) for r in responses]
    kept = [n * int(k and u) for n, k, u in zip(lengths, keep.bool().tolist(), usable.tolist())]   # on the host
    return StepRows(prompts=prompts, responses=responses, lengths=lengths,
                    group_ids=batch.column("group_id").to_pylist(), adv=np.where(usable, adv, 0.0),
                    behaviour=zeroed(behaviour, usable), ref=zeroed(ref, usable),
                    old=zeroed(old, usable) if old is not None else None, keep=keep.to(device),
                    usable=torch.from_numpy(usable.astype(np.float32)).to(device), usable_np=usable,
                    kept_tokens=kept, bad_logprobs=bad)


@dataclass
class StepTally:
    """Sums over a step's micro-batches: loss terms (each its share of the mini-batch mean), grad norms."""
    keys: tuple[str, ...]
    stats: dict[str, list[float]] = field(default_factory=dict)
    grad_norms: list[float] = field(default_factory=list)
    skipped: int = 0
    ran: int = 0

    def add(self, terms, part: float, finite: bool) -> None:
        self.ran += 1
        self.skipped += not finite
        for key in self.keys:
            self.stats.setdefault(key, []).append(float(getattr(terms, key).detach()) * part if finite else 0.0)

    def metrics(self, mini_batches: int, rows: StepRows) -> dict[str, float]:
        out = {k: float(np.sum(self.stats.get(k, []))) / mini_batches for k in self.keys}
        out["grad_norm"] = float(np.mean(self.grad_norms)) if self.grad_norms else 0.0
        out.update(nonfinite_logprob_rows=float(rows.bad_logprobs), masked_rows=float((~rows.usable_np).sum()),
                   skipped_microbatches=float(self.skipped), microbatches=float(self.ran))
        return out


def usable_rows(loss_mask, advantages, behaviour: list[list[float]], ref: list[list[float]]
                ) -> tuple[np.ndarray, int]:
    """(N,) bool: rows that may enter the loss (driver's loss_mask, finite advantage and logprobs), and
    how many rows have non-finite behaviour or reference logprobs."""
    finite = lambda seq: bool(np.isfinite(np.asarray(seq, dtype=np.float64)).all())  # noqa: E731
    logprobs_ok = np.array([finite(b) and finite(r) for b, r in zip(behaviour, ref)], dtype=bool)
    usable = np.asarray(loss_mask, dtype=bool) & logprobs_ok & np.isfinite(np.asarray(advantages, dtype=np.float64))
    return usable, int((~logprobs_ok).sum())


def zeroed(seqs: list[list[float]], usable: np.ndarray) -> list[list[float]]:
    return [s if ok else [0.0] * len(s) for s, ok in zip(seqs, usable.tolist())]


def pad(seqs: list[list[float]], width: int, device=None):
    """(len(seqs), width) float32, right-padded with 0, built on the host and copied to `device` once."""
    import torch
    out = torch.zeros(len(seqs), width)
    for j, s in enumerate(seqs):
        out[j, : len(s)] = torch.tensor(s[:width], dtype=torch.float32)
    return out if device is None else out.to(device)
