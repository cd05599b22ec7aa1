"""Prompt source: deterministic, resumable epochs over rubric records, B prompts per batch."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from promedical.actors.interfaces import PromptRequest
from promedical.reward.rubric import RubricRecord


@dataclass
class SourceState:
    epoch: int = 0
    index: int = 0          # next position within the epoch's order
    next_group_id: int = 0  # group ids are unique over the whole run


class PromptSource:
    def __init__(self, records: list[RubricRecord], *, seed: int, shuffle: bool = True) -> None:
        if not records:
            raise ValueError("the prompt source needs at least one record")
        self.records = records
        self.seed = seed
        self.shuffle = shuffle
        self.state = SourceState()

    def _order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(self.records))
        return np.random.default_rng((self.seed, epoch)).permutation(len(self.records))

    def next_batch(self, size: int) -> list[tuple[int, RubricRecord]]:
        """`size` (group_id, record) pairs; wraps into a new, reshuffled epoch when one runs out."""
        out: list[tuple[int, RubricRecord]] = []
        while len(out) < size:
            order = self._order(self.state.epoch)
            if self.state.index >= len(order):
                self.state.epoch += 1
                self.state.index = 0
                continue
            out.append((self.state.next_group_id, self.records[int(order[self.state.index])]))
            self.state.index += 1
            self.state.next_group_id += 1
        return out

    def rubrics(self) -> dict[str, RubricRecord]:
        return {r.prompt_id: r for r in self.records}


def requests_of(prompts: list[tuple[int, RubricRecord]]) -> list[PromptRequest]:
    """The generation requests of (group_id, record) pairs, in order: the driver's one PromptRequest builder."""
    return [PromptRequest(prompt_id=r.prompt_id, group_id=gid, messages=tuple((m.role, m.content) for m in r.messages))
            for gid, r in prompts]
