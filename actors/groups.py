"""Role groups: N Ray actors of one role behind one handle, for the driver loop.

A group dispatches a step's rows across its replicas (whole GRPO groups, balanced by tokens), gathers
the results in row order and names the replica in every error; every wait has a timeout. Batches stay
in Ray's object store: a group passes object references on, the driver fetches only the small
columns it needs (`Rollouts.summary`, the reward columns), and each replica assembles the rows it
needs itself (`storage.schema.gather_rows`).

    GeneratorGroup  replicas sharing the prompt queue: generate(requests) -> Generated
    RewardPool      reward replicas: score(rollouts, rubrics) -> Scored (columns by reference)
    ReferencePool   reference replicas: logprobs(rollouts) -> Scored
    PolicyGroup     data-parallel DeepSpeed ranks of one torch.distributed group: train_step(step)

Each implements its Protocol in actors/interfaces.py, the seam the driver loop is written against
(tests/test_types.py type-checks that they do).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import ray

from promedical.actors.errors import gather
from promedical.actors.healing import Healing, settle
from promedical.actors.interfaces import (Columns, PromptRequest, RankShare, ReferenceRole, RewardRole, Rollouts,
                                          StepBatch)
from promedical.actors.sharding import positions, rank_shares, split_groups
from promedical.reward.rubric import RubricRecord
from promedical.storage.schema import SUMMARY_COLUMNS, gather_rows, merge_columns


def _assemble(sources: list[tuple[int, np.ndarray]], rows: np.ndarray, *pieces: pa.RecordBatch) -> pa.RecordBatch:
    """Inside a worker: the given rows of every source, joined column-wise (refs arrive resolved)."""
    parts, start = [], 0
    for count, where in sources:
        parts.append(gather_rows(list(pieces[start:start + count]), where, rows))
        start += count
    return merge_columns(parts[0], *parts[1:])


def shipment(sources: list[Columns], rows: np.ndarray) -> tuple[list, list[Any]]:
    """(`_assemble`'s leading arguments, the piece refs) that let a worker build `rows` of `sources`.

    Only the pieces holding some of `rows` travel (a replica on another node pulls no piece it does not
    need); the worker's row index is into the concatenation of those pieces.
    """
    rows = np.asarray(rows, dtype=np.int64)
    layout, refs = [], []
    for c in sources:
        starts = np.cumsum([0, *c.sizes])
        position = c.where[rows]
        piece = np.searchsorted(starts, position, side="right") - 1
        needed = np.unique(piece)
        shift = np.zeros(len(c.sizes), dtype=np.int64)     # a needed piece's start in the shipped concatenation
        shift[needed] = np.cumsum([0, *[c.sizes[k] for k in needed[:-1]]])
        layout.append((len(needed), position - starts[piece] + shift[piece]))
        refs.extend(c.pieces[k] for k in needed)
    return [layout, np.arange(len(rows), dtype=np.int64)], refs


# ----------------------------------------------------------------------------- generators


def _generate(actor: Any, requests: list[PromptRequest], group_size: int) -> tuple[pa.RecordBatch, pa.RecordBatch]:
    batch = actor.generate(requests, group_size)
    return batch, batch.select(SUMMARY_COLUMNS)


@dataclass
class Generated:
    """One batch being generated: per replica call, its requests and (batch, summary) refs."""

    requests: list[list[PromptRequest]]
    replicas: list[int]
    batches: list[Any]
    summaries: list[Any]
    version: int = 0                   # policy version of the weights that generate it
    group_size: int = 0
    issued_on: list[Any] = field(default_factory=list)   # the actor each call went to (None: restored)


@dataclass
class GeneratorGroup:
    """vLLM replicas sharing the prompt queue, and the weight versions they hold.

    The group owns the versions under every sync method: `version` is the latest queued, `held[i]` the
    one replica i was last confirmed to hold (`delivered`). With healing, a lost replica is replaced,
    given the weights of the batch's version through the object store (an export kept in `weights`,
    or one the sync method keeps, fetched by `source`) and asked again.
    """

    handles: list[Any]
    timeout_s: float = 600.0
    healing: Healing | None = None
    role: str = "generator"
    weights: dict[int, Any] = field(default_factory=dict)   # version -> exported weights ref (recent ones)
    version: int = 0                                         # latest version queued on the replicas
    held: list[int] = field(default_factory=list)            # per replica: the version it last confirmed
    source: Callable[[int], Any] | None = None               # version -> weights ref, when not in `weights`

    def delivered(self, version: int) -> None:
        """Every replica holds `version` (its sync finished, lost replicas given it)."""
        self.held = [version] * len(self.handles)

    def generate(self, requests: list[PromptRequest], group_size: int) -> Generated:
        """Split the prompts over the replicas (contiguous shares, row order kept); returns at once."""
        shares = [list(s) for s in np.array_split(np.arange(len(requests)), len(self.handles)) if len(s)]
        out = Generated([], [], [], [], version=self.version, group_size=group_size)
        for replica, share in enumerate(shares):
            reqs = [requests[i] for i in share]
            batch, summary = self._call(replica, reqs, group_size)
            out.requests.append(reqs)
            out.replicas.append(replica)
            out.batches.append(batch)
            out.summaries.append(summary)
            out.issued_on.append(self.handles[replica])
        return out

    def _call(self, replica: int, requests: list[PromptRequest], group_size: int) -> tuple[Any, Any]:
        return self.handles[replica].__ray_call__.options(num_returns=2).remote(_generate, requests, group_size)

    def collect(self, generated: Generated) -> Rollouts:
        """Wait for the batch (healing lost replicas); fetch only its summary columns."""
        summaries = settle(self, list(zip(generated.replicas, generated.summaries)), "generate",
                           lambda k: self._reissue(generated, k)[1], issued=generated.issued_on)
        summary = pa.concat_batches(summaries) if len(summaries) > 1 else summaries[0]
        return Rollouts(Columns(list(generated.batches), np.arange(summary.num_rows), [p.num_rows for p in summaries]),
                        summary)

    def _reissue(self, generated: Generated, k: int) -> tuple[Any, Any]:
        """Call k again on its replica's (new) actor, with the weights of the batch's version."""
        replica = generated.replicas[k]
        self.load(replica, generated.version)
        generated.batches[k], generated.summaries[k] = self._call(replica, generated.requests[k], generated.group_size)
        generated.issued_on[k] = self.handles[replica]
        if self.version != generated.version:   # then catch up with the weights queued since
            self.load(replica, self.version)
        return generated.batches[k], generated.summaries[k]

    def load(self, replica: int, version: int) -> Any:
        """Queue `version` on a (replaced) replica; version 0 is the weights every replica starts with."""
        if version == 0:
            return None
        weights = self.weights.get(version)
        if weights is None and self.source is not None:
            weights = self.source(version)
        if weights is None:
            raise RuntimeError(f"generator replica {replica}: weights of version {version} are no longer kept; "
                               f"the run resumes from its checkpoint instead")
        return self.handles[replica].load_weights.remote(version, weights)

    def heal_sync(self, replica: int, version: int, cause: str, since: float) -> float:
        """A replica lost (`cause` died or hung) during a weight sync: replace it and load `version`;
        its seconds to load. With no cause (alive, its collective broke) it is only given `version`."""
        from promedical.actors.errors import ReplicaError

        if cause:
            self.handles[replica] = self.healing.swap(self.role, replica, self.handles[replica],
                                                      ReplicaError(self.role, replica, "lost in weight sync", cause))
        ref = self.load(replica, version)
        seconds = gather(self.role, [(replica, ref)], self.timeout_s, "load_weights")[0] if ref is not None else 0.0
        if cause:
            self.healing.record(self.role, replica, cause, time.perf_counter() - since)
        return seconds

    def fetch(self, generated: Generated) -> pa.RecordBatch:
        """The whole generated batch (for a checkpoint of the rollouts not yet trained on)."""
        batches = settle(self, list(zip(generated.replicas, generated.batches)), "generate",
                         lambda k: self._reissue(generated, k)[0], issued=generated.issued_on)
        return pa.concat_batches(batches) if len(batches) > 1 else batches[0]

    @staticmethod
    def restored(batch: pa.RecordBatch, requests: list[PromptRequest]) -> Generated:
        """A batch read back from a checkpoint, as if just generated."""
        return Generated([requests], [0], [ray.put(batch)], [ray.put(batch.select(SUMMARY_COLUMNS))],
                         issued_on=[None])


# ----------------------------------------------------------------------------- reward and reference


def _score(actor: RewardRole, batch: pa.RecordBatch, rubrics: dict[str, RubricRecord]) -> pa.RecordBatch:
    return actor.score(batch, rubrics)


def _logprobs(actor: ReferenceRole, batch: pa.RecordBatch) -> pa.RecordBatch:
    return actor.logprobs(batch)


def _on_rows(actor: Any, work: Callable[..., pa.RecordBatch], small: list[str], kwargs: dict, sources, rows,
             *pieces):
    batch = _assemble(sources, rows, *pieces)
    result = work(actor, batch, **kwargs)
    return result, result.select(small)


@dataclass
class Scored:
    """New columns being computed by a pool: by reference, plus the refs of their small columns."""

    pool: "PoolGroup"
    columns: Columns
    replicas: list[int]
    smalls: list[Any]
    calls: list[tuple]                # each replica's call arguments, to issue it again on a replacement
    what: str = "score"               # the role method computing them, named in errors

    def small(self) -> pa.RecordBatch:
        """Wait for every replica (healing lost ones); the small columns in global row order."""
        def reissue(k: int) -> Any:
            handle = self.pool.handles[self.replicas[k]]
            self.columns.pieces[k], self.smalls[k] = handle.__ray_call__.options(num_returns=2).remote(*self.calls[k])
            return self.smalls[k]

        parts = settle(self.pool, list(zip(self.replicas, self.smalls)), self.what, reissue)
        whole = pa.concat_batches(parts) if len(parts) > 1 else parts[0]
        return whole.take(pa.array(self.columns.where, type=pa.int64()))


@dataclass
class PoolGroup:
    """Reward or reference replicas: each computes columns of whole groups of the batch; merged by row."""

    role: str
    handles: list[Any]
    small_columns: list[str]          # what the driver reads back
    timeout_s: float = 600.0
    healing: Healing | None = None

    def start(self, work: Callable[..., pa.RecordBatch], rollouts: Rollouts, **kwargs: Any) -> Scored:
        """`work(replica, rows, **kwargs)` on every replica's share of the rows; returns at once."""
        summary = rollouts.summary
        shards = split_groups(summary.column("group_id").to_pylist(),
                              summary.column("response_length").to_pylist(), len(self.handles))
        shards = [(r, s) for r, s in enumerate(shards) if s]
        pieces, smalls, calls = [], [], []
        for replica, rows in shards:
            lead, refs = shipment([rollouts.generation], np.asarray(rows))
            call = (_on_rows, work, self.small_columns, kwargs, *lead, *refs)
            piece, small = self.handles[replica].__ray_call__.options(num_returns=2).remote(*call)
            pieces.append(piece)
            smalls.append(small)
            calls.append(call)
        where = positions([rows for _, rows in shards], rollouts.num_rows)
        return Scored(self, Columns(pieces, where, [len(rows) for _, rows in shards]), [r for r, _ in shards],
                      smalls, calls, what=work.__name__.lstrip("_"))


@dataclass
class RewardPool(PoolGroup):
    """Reward replicas (interfaces.ScoringPool)."""

    def score(self, rollouts: Rollouts, rubrics: dict[str, RubricRecord]) -> Scored:
        return self.start(_score, rollouts, rubrics=rubrics)


@dataclass
class ReferencePool(PoolGroup):
    """Reference replicas (interfaces.ReferencePool)."""

    def logprobs(self, rollouts: Rollouts) -> Scored:
        return self.start(_logprobs, rollouts)


# ----------------------------------------------------------------------------- policy ranks


def _train_rank(actor: Any, share: RankShare, sources, rows, *pieces) -> dict[str, float]:
    return actor.train_step(_assemble(sources, rows, *pieces), share)


@dataclass
class PolicyGroup:
    """N data-parallel DeepSpeed ranks; rank 0's weights are the policy's."""

    handles: list[Any]
    zero_stage: int
    mini_batches: int
    timeout_s: float = 1800.0
    role: str = "policy"
    mask_truncated: bool = False      # rollout.overlong=filter: rows cut at the budget have no loss tokens

    def train_step(self, step: StepBatch, seed: int) -> dict[str, float]:
        """Each rank trains on its share of every mini-batch; returns the whole batch's statistics."""
        summary = step.summary
        shares = rank_shares(summary.column("group_id").to_pylist(), loss_lengths(summary, self.mask_truncated),
                             mini_batches=self.mini_batches, ranks=len(self.handles), seed=seed)
        refs = []
        for rank, (rows, share) in enumerate(shares):
            lead, pieces = shipment(step.sources, np.asarray(rows))
            refs.append((rank, self.handles[rank].__ray_call__.remote(_train_rank, share, *lead, *pieces)))
        reports = gather(self.role, refs, self.timeout_s, "train_step")
        return combine_reports(reports)

    def export_refs(self) -> Any:
        """Ref of rank 0's exported weights; every rank joins the gather of ZeRO-3 partitions."""
        callers = self.handles if self.zero_stage == 3 else self.handles[:1]
        refs = [h.export_weights.remote() for h in callers]
        return refs[0]

    def save(self, directory: str) -> None:
        """Every rank writes its part of the checkpoint (ZeRO partitions) into `directory` (collective)."""
        self._on_every_rank("save", [h.save.remote(directory) for h in self.handles])

    def restore(self, directory: str) -> list[int]:
        """Every rank loads `directory` (collective); the versions they restored, by rank."""
        return self._on_every_rank("restore", [h.restore.remote(directory) for h in self.handles])

    def _on_every_rank(self, what: str, refs: list[Any]) -> list[Any]:
        return gather(self.role, list(enumerate(refs)), self.timeout_s, what)


# what every rank reports alike (taken from rank 0); every other statistic is a rank's part of the
# whole batch's value (summed over ranks)
GLOBAL_KEYS = ("grad_norm", "lr")


def combine_reports(reports: list[dict[str, float]]) -> dict[str, float]:
    """Ranks' reports -> the whole batch's: parts summed, global values from rank 0, the slowest rank's time."""
    out = {k: (v if k in GLOBAL_KEYS else float(sum(r[k] for r in reports))) for k, v in reports[0].items()}
    out["train_seconds"] = max(r["train_seconds"] for r in reports)
    return out


def save_rollouts(path: str, step: StepBatch) -> Any:
    """Write the step's whole batch to `path` from a task on this (the driver's) node; returns its ref.

    The rows are assembled in the object store, so they never pass through the driver process.
    """
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node = ray.get_runtime_context().get_node_id()
    lead, pieces = shipment(step.sources, np.arange(step.num_rows))
    task = ray.remote(_write_rollouts).options(
        num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node, soft=False))
    return task.remote(path, *lead, *pieces)


def _write_rollouts(path: str, sources, rows, *pieces) -> str:
    from pathlib import Path

    from promedical.storage.run_dir import write_batch_file
    from promedical.storage.schema import check_complete

    batch = _assemble(sources, rows, *pieces)
    check_complete(batch)
    write_batch_file(Path(path), batch)
    return path


def wait_all(refs: list[Any], timeout_s: float) -> None:
    """Block until `refs` are done (e.g. rollout writes), or raise saying how many are late."""
    if refs:
        _, late = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
        if late:
            raise TimeoutError(f"{len(late)} of {len(refs)} rollout writes not done within {timeout_s:g}s")
        ray.get(refs)


def loss_lengths(summary: pa.RecordBatch, mask_truncated: bool) -> list[int]:
    """Per row, its response tokens that enter the loss: 0 for a row the driver masked (its `loss_mask`
    column, when the summary has one: a non-finite reward) and for a row cut at the budget when masked."""
    lengths = summary.column("response_length").to_pylist()
    if "loss_mask" in summary.schema.names:
        lengths = [n if ok else 0 for n, ok in zip(lengths, summary.column("loss_mask").to_pylist())]
    if not mask_truncated:
        return lengths
    return [0 if f == "length" else n for n, f in zip(lengths, summary.column("finish_reason").to_pylist())]
