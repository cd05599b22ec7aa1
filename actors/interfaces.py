"""The role interfaces: what one replica of each role does, and what the driver loop asks of each role group.

Two levels, both typed Protocols that know nothing of Ray:
- replica roles (`GeneratorRole`, `RewardRole`, `ReferenceRole`, `PolicyRole`): the same classes run
  in-process (unit tests, `promedical eval`) and as Ray actors;
- role groups (`GeneratorGroup`, `ScoringPool`, `ReferencePool`, `PolicyGroup`, `WeightSyncer`): the one
  seam `rollout/` is written against. `actors/groups.py` implements them over N Ray replicas; the unit
  tests implement them with in-process fakes, and tests/test_types.py type-checks both.
The data that crosses the seam (`Columns`, `Rollouts`, `StepBatch`) is declared here too.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import numpy as np
import pyarrow as pa

from promedical.reward.rubric import RubricRecord


@dataclass(frozen=True)
class PromptRequest:
    """One prompt to sample a GRPO group for (the driver builds them in rollout/prompts.py `requests_of`)."""

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


# ----------------------------------------------------------------------------- data across the group seam


@dataclass
class Columns:
    """Some columns of a step's N rows, held as pieces (object refs in a run, RecordBatches in a unit
    test); global row i is row `where[i]` of the pieces' concatenation, whose piece k has `sizes[k]` rows."""

    pieces: list[Any]
    where: np.ndarray            # (N,) int64
    sizes: list[int]

    @classmethod
    def whole(cls, batch: pa.RecordBatch) -> "Columns":
        """All rows of one batch (e.g. the driver's own columns), in order."""
        return cls([batch], np.arange(batch.num_rows), [batch.num_rows])


@dataclass
class Rollouts:
    """A generated batch: generation columns by reference, the small summary columns fetched."""

    generation: Columns
    summary: pa.RecordBatch      # storage.schema.SUMMARY_COLUMNS of the same rows, row order

    @property
    def num_rows(self) -> int:
        return self.summary.num_rows


@dataclass
class StepBatch:
    """Everything the policy trains on in one step, by reference: generation, reward, reference and
    the driver's training columns, each with its own row layout."""

    sources: list[Columns]
    num_rows: int
    summary: pa.RecordBatch      # the summary columns plus loss_mask, row order


# ----------------------------------------------------------------------------- role groups: the loop's seam


class Pending(Protocol):
    """New columns a pool is computing: by reference now, the small ones on demand."""

    @property
    def columns(self) -> Columns: ...
    def small(self) -> pa.RecordBatch: ...


class GeneratorGroup(Protocol):
    """Generator replicas sharing the prompt queue; `generate` returns at once with a handle on the batch."""

    def generate(self, requests: list[PromptRequest], group_size: int) -> object: ...
    def collect(self, generated: Any) -> Rollouts: ...            # wait; only the summary is fetched
    def fetch(self, generated: Any) -> pa.RecordBatch: ...        # the whole batch (checkpoints)
    def restored(self, batch: pa.RecordBatch, requests: list[PromptRequest]) -> object: ...


class ScoringPool(Protocol):
    """Reward replicas: reward columns (storage.schema.REWARD_FIELDS) of every row."""

    def score(self, rollouts: Rollouts, rubrics: dict[str, RubricRecord]) -> Pending: ...


class ReferencePool(Protocol):
    """Reference replicas: reference logprobs (storage.schema.REFERENCE_FIELDS) of every row."""

    def logprobs(self, rollouts: Rollouts) -> Pending: ...


class PolicyGroup(Protocol):
    """Data-parallel policy ranks: one update per step, collective save and restore."""

    def train_step(self, step: StepBatch, seed: int) -> dict[str, float]: ...
    def save(self, directory: str) -> None: ...
    def restore(self, directory: str) -> list[int]: ...           # each rank's restored version


class RestartLog(Protocol):
    """Replicas replaced during the run (actors/healing.py Healing), handed out once per step."""

    def drain(self) -> list[dict]: ...                           # role, replica, cause, seconds_lost


class WeightSyncer(Protocol):
    """Policy -> generators by version (actors/weight_sync.py): start queues, wait blocks or raises."""

    def start(self, version: int) -> Any: ...
    def wait(self, pending: Any) -> float: ...                   # seconds of the slowest load
