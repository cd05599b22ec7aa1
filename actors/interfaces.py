"""The role interfaces: what one replica of each role does, as typed Protocols that know nothing of Ray.

The same classes run in-process (unit tests, `promedical eval`) and as Ray actors; `actors/groups.py`
wraps N replicas of a role behind one handle of the same shape for the driver loop.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import pyarrow as pa

from promedical.reward.rubric import RubricRecord


@dataclass(frozen=True)
class PromptRequest:
    prompt_id: str
    group_id: int                          # unique per (step, prompt); seeds the group's sampling
    messages: tuple[tuple[str, str], ...]  # ((role, content), ...)


@dataclass(frozen=True)
class RankShare:
    """What one policy rank trains on in one step: its rows, cut into the step's mini-batches.

    `minis[m]` are row indices into the rank's own batch; the denominators are the whole
    mini-batch's (over all ranks), so that averaging the ranks' gradients gives the full gradient.
    """

    minis: tuple[tuple[int, ...], ...]     # per mini-batch: this rank's rows (whole GRPO groups)
    mini_tokens: tuple[int, ...]           # per mini-batch: response tokens over all ranks
    mini_rows: tuple[int, ...]             # per mini-batch: rows over all ranks
    world_size: int = 1


class GeneratorRole(Protocol):
    def generate(self, prompts: Sequence[PromptRequest], group_size: int) -> pa.RecordBatch: ...
    def load_weights(self, version: int, named_tensors: Any) -> float: ...
    def version(self) -> int: ...


class RewardRole(Protocol):
    def score(self, batch: pa.RecordBatch, rubrics: dict[str, RubricRecord]) -> pa.RecordBatch: ...


class ReferenceRole(Protocol):
    def logprobs(self, batch: pa.RecordBatch) -> pa.RecordBatch: ...


class PolicyRole(Protocol):
    def train_step(self, batch: pa.RecordBatch, share: RankShare | None = None) -> dict[str, float]: ...
    def export_weights(self) -> list | None: ...
    def version(self) -> int: ...
    def save(self, directory: str) -> None: ...
    def restore(self, directory: str) -> int: ...
