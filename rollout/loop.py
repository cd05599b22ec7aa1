"""The driver loop: generate, score, reference logprobs, advantages, train, sync weights.

One loop serves both modes: generation runs up to `max_staleness` batches ahead of training, so
`max_staleness = 0` is the synchronous loop and k > 0 overlaps generation with training while no
trained row is more than k policy versions old. At most k + 1 batches are in flight (backpressure).
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import ray

from promedical.actors.generator import PromptRequest
from promedical.rollout.advantages import ADVANTAGES
from promedical.rollout.metrics import phase_metrics, rollout_metrics
from promedical.rollout.prompts import PromptSource
from promedical.storage.schema import TRAINING_FIELDS, columns_batch, merge_columns


class WeightSyncTimeout(RuntimeError):
    pass


@dataclass
class Roles:
    """Ray actor handles of one run, as built by deploy/."""

    policy: Any
    reference: Any
    reward: Any
    generators: list[Any]


@dataclass
class LoopSettings:
    steps: int
    prompts_per_step: int
    group_size: int
    max_staleness: int
    advantage: str
    sync_timeout_s: float


@dataclass
class InFlight:
    """One batch being generated: its object refs (one per generator replica) and launch version."""

    parts: list[ray.ObjectRef]
    version: int
    prompts: list[tuple[int, Any]]
    launched_at: float = field(default_factory=time.perf_counter)


def launch(roles: Roles, source: PromptSource, settings: LoopSettings, version: int) -> InFlight:
    """Take B prompts from the shared queue and split them across the generator replicas."""
    prompts = source.next_batch(settings.prompts_per_step)
    requests = [PromptRequest(prompt_id=r.prompt_id, group_id=gid,
                              messages=tuple((m.role, m.content) for m in r.messages)) for gid, r in prompts]
    shards = np.array_split(np.arange(len(requests)), len(roles.generators))
    parts = [g.generate.remote([requests[i] for i in shard], settings.group_size)
             for g, shard in zip(roles.generators, shards) if len(shard)]
    return InFlight(parts=parts, version=version, prompts=prompts)


def score_and_train(roles: Roles, flight: InFlight, settings: LoopSettings, version: int,
                    step: int) -> tuple[pa.RecordBatch, dict[str, Any]]:
    """Finish one in-flight batch: reward and reference in parallel, advantages, one policy update."""
    generated = ray.get(flight.parts)
    gen = pa.concat_batches(generated) if len(generated) > 1 else generated[0]
    rubrics = {r.prompt_id: r for _, r in flight.prompts}
    rew_ref, ref_ref = roles.reward.score.remote(gen, rubrics), roles.reference.logprobs.remote(gen)
    rew, ref = ray.get([rew_ref, ref_ref])
    scored = merge_columns(gen, rew, ref)
    rewards = scored.column("reward").to_numpy(zero_copy_only=False)
    groups = scored.column("group_id").to_numpy(zero_copy_only=False)
    advantage = ADVANTAGES[settings.advantage](rewards, groups)
    batch = merge_columns(scored, columns_batch(TRAINING_FIELDS, {
        "advantage": advantage, "trained_version": [version] * scored.num_rows,
        "step": [step] * scored.num_rows}))
    train = ray.get(roles.policy.train_step.remote(batch))
    phases = {"generate": max(float(b.column("generate_seconds")[0].as_py()) for b in generated),
              "score": float(rew.column("score_seconds")[0].as_py()),
              "reference": float(ref.column("reference_seconds")[0].as_py()),
              "train": train.pop("train_seconds")}
    return batch, {"train": train, "phases": phases}


def sync_weights(roles: Roles, version: int) -> list[ray.ObjectRef]:
    """Queue weights `version` on every generator (object-store path of actors/weight_sync.py)."""
    from promedical.actors.weight_sync import ObjectStoreSync
    return ObjectStoreSync(policy=roles.policy, generators=roles.generators).start(version).refs


def wait_sync(refs: list[ray.ObjectRef], timeout_s: float, version: int) -> float:
    """Block until every generator holds `version`; returns the slowest load's seconds."""
    from promedical.actors import weight_sync
    try:
        return weight_sync.wait(weight_sync.PendingSync(version, refs), timeout_s)
    except weight_sync.WeightSyncTimeout as exc:
        raise WeightSyncTimeout(str(exc)) from exc


@dataclass
class LoopState:
    """Where a run stands between steps: what a checkpoint saves and a resume restores."""

    step: int = 0                  # next step to train
    version: int = 0               # current policy version
    inflight: deque = field(default_factory=deque)   # InFlight batches generated ahead of training


def finish_inflight(inflight: deque) -> list[tuple[InFlight, pa.RecordBatch]]:
    """Wait for every in-flight generation (to checkpoint the rollouts still in the buffer)."""
    return [(f, pa.concat_batches(ray.get(f.parts))) for f in inflight]


def run_loop(roles: Roles, source: PromptSource, settings: LoopSettings, state: LoopState, *,
             on_step: Callable[[int, pa.RecordBatch, dict[str, Any]], None],
             checkpoint_every: int = 0, on_checkpoint: Callable[[LoopState], None] | None = None) -> LoopState:
    """Train from state.step to settings.steps - 1; returns the final state."""
    pending_sync: list[ray.ObjectRef] = []
    launched = state.step + len(state.inflight)
    while state.step < settings.steps:
        step, step_start = state.step, time.perf_counter()
        while len(state.inflight) <= settings.max_staleness and launched < settings.steps:
            state.inflight.append(launch(roles, source, settings, state.version))
            launched += 1
        flight = state.inflight.popleft()
        batch, report = score_and_train(roles, flight, settings, state.version, step)
        # async: the previous step's sync has had a whole step to land; sync: wait for this one now
        sync_seconds = wait_sync(pending_sync, settings.sync_timeout_s, state.version) if pending_sync else 0.0
        state.version += 1
        pending_sync = sync_weights(roles, state.version)
        if settings.max_staleness == 0:
            sync_seconds = wait_sync(pending_sync, settings.sync_timeout_s, state.version)
            pending_sync = []
        report["phases"]["sync"] = sync_seconds
        metrics = {**rollout_metrics(batch), **report["train"],
                   **phase_metrics(report["phases"], time.perf_counter() - step_start,
                                   int(batch.column("response_length").to_numpy().sum())),
                   "rollouts_in_flight": len(state.inflight) * settings.prompts_per_step * settings.group_size}
        state.step += 1
        on_step(step, batch, {"step": step, "policy_version": state.version, **metrics})
        if on_checkpoint and checkpoint_every and state.step % checkpoint_every == 0:
            if pending_sync:
                wait_sync(pending_sync, settings.sync_timeout_s, state.version)
                pending_sync = []
            on_checkpoint(state)
    if pending_sync:
        wait_sync(pending_sync, settings.sync_timeout_s, state.version)
    return state
