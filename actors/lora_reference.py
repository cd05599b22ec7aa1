"""With LoRA, the reference role is the policy ranks themselves: the base model with its adapters off.

`BaseReference` stands where the reference pool stands in the loop (`logprobs(rollouts)` -> pending
REFERENCE_FIELDS columns) but calls `Policy.reference_logprobs` on the policy ranks, so no reference actor,
bundle or memory is needed. Under ZeRO stages 0-2 each rank holds the whole base and scores its share of
the GRPO groups; under ZeRO-3 a forward pass gathers each layer from every rank, so all ranks score the
same rows together and rank 0's columns are used. A lost policy rank is not healed here: like a failed
train step, it resumes the run from its latest checkpoint.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from promedical.actors.errors import gather
from promedical.actors.groups import _assemble, shipment
from promedical.actors.interfaces import Columns, Rollouts
from promedical.actors.sharding import positions, split_groups


def _base_rows(actor: Any, small: list[str], sources, rows, *pieces) -> tuple[pa.RecordBatch, pa.RecordBatch]:
    """Inside a policy rank: reference columns of the shipped rows, and their small columns."""
    result = actor.reference_logprobs(_assemble(sources, rows, *pieces))
    return result, result.select(small)


@dataclass
class BasePending:
    """Reference columns being computed by the policy ranks (by reference), and the refs of their small ones."""

    columns: Columns
    calls: list[tuple[int, Any]]          # (rank, small-columns ref) of every call made
    timeout_s: float
    used: int                             # how many leading calls hold the rows (ZeRO-3: rank 0's only)

    def small(self) -> pa.RecordBatch:
        parts = gather("policy", self.calls, self.timeout_s, "reference_logprobs")[:self.used]
        whole = pa.concat_batches(parts) if len(parts) > 1 else parts[0]
        return whole.take(pa.array(self.columns.where, type=pa.int64()))


@dataclass
class BaseReference:
    """The reference pool of a LoRA run (interfaces.ReferencePool): base logprobs from the policy ranks."""

    handles: list[Any]                    # the policy ranks
    zero_stage: int
    timeout_s: float = 1800.0
    small_columns: tuple[str, ...] = ("reference_seconds",)
    role: str = "policy"

    def logprobs(self, rollouts: Rollouts) -> BasePending:
        summary = rollouts.summary
        n = rollouts.num_rows
        if self.zero_stage == 3 and len(self.handles) > 1:   # every rank, every row: the gathers line up
            shards = [(rank, list(range(n))) for rank in range(len(self.handles))]
            used = 1
        else:
            split = split_groups(summary.column("group_id").to_pylist(),
                                 summary.column("response_length").to_pylist(), len(self.handles))
            shards = [(rank, rows) for rank, rows in enumerate(split) if rows]
            used = len(shards)
        pieces, calls = [], []
        for rank, rows in shards:
            lead, refs = shipment([rollouts.generation], np.asarray(rows))
            piece, small = self.handles[rank].__ray_call__.options(num_returns=2).remote(
                _base_rows, list(self.small_columns), *lead, *refs)
            pieces.append(piece)
            calls.append((rank, small))
        kept = shards[:used]
        where = positions([rows for _, rows in kept], n)
        return BasePending(Columns(pieces[:used], where, [len(rows) for _, rows in kept]), calls, self.timeout_s, used)
