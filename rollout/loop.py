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

from promedical.actors.interfaces import (Columns, GeneratorGroup, PolicyGroup, ReferencePool, RestartLog,
                                          ScoringPool, StepBatch, WeightSyncer)
from promedical.rollout.advantages import ADVANTAGES
from promedical.rollout.dynamic_sampling import Scoring, more_rounds, sample_informative, shaped_rewards
from promedical.rollout.guards import masked_advantages, step_health
from promedical.rollout.metrics import phase_metrics, rollout_metrics
from promedical.rollout.prompts import PromptSource, requests_of
from promedical.storage.schema import TRAINING_FIELDS, columns_batch, merge_columns


@dataclass
class Roles:
    """The run's role groups, typed by the Protocols of actors/interfaces.py (the loop's one seam).

    deploy/ builds them over Ray replicas (actors/groups.py); a unit test passes in-process fakes.
    """

    policy: PolicyGroup           # train_step(StepBatch, seed) -> metrics; save / restore
    reference: ReferencePool      # logprobs(rollouts) -> Pending reference columns
    reward: ScoringPool           # score(rollouts, rubrics) -> Pending reward columns
    generators: GeneratorGroup    # generate(requests, G) -> handle; collect(handle) -> Rollouts
    sync: WeightSyncer            # start(version) -> pending; wait(pending) -> seconds
    healing: RestartLog | None = None   # replaced replicas, drained per step by deploy/run.py


@dataclass
class LoopSettings:
    steps: int
    prompts_per_step: int
    group_size: int
    max_staleness: int
    advantage: str
    std: str = "sample"                  # grpo's group std
    dynamic_sampling: bool = False       # drop constant groups, generate more (rollout/dynamic_sampling.py)
    max_sampling_rounds: int = 1
    overlong: str = "none"               # soft: DAPO's length penalty added to the rewards the advantage sees
    max_new_tokens: int = 0
    overlong_buffer: int = 0
    veto_lam: float | None = None        # soft shaping kept inside the veto bands (reward.aggregator=promedical)


@dataclass
class InFlight:
    """One batch being generated: the generator group's handle on it and the version that launched it."""

    generated: object             # the generator group's handle, passed back to collect / fetch
    version: int
    prompts: list[tuple[int, Any]]
    launched_at: float = field(default_factory=time.perf_counter)


def launch(roles: Roles, source: PromptSource, settings: LoopSettings, version: int) -> InFlight:
    """Take B prompts from the shared queue; the generator group shares them across its replicas."""
    prompts = source.next_batch(settings.prompts_per_step)
    return InFlight(generated=roles.generators.generate(requests_of(prompts), settings.group_size), version=version,
                    prompts=prompts)


def score_and_train(roles: Roles, flight: InFlight, settings: LoopSettings, version: int,
                    step: int, source: PromptSource) -> tuple[StepBatch, dict[str, Any]]:
    """Finish one in-flight batch: reward and reference in parallel, advantages, one policy update.

    Only small columns reach the driver (summary, reward columns); the rest moves by reference.
    With dynamic sampling, more prompts are drawn from `source` until the batch is informative, and
    the reference scores only the rows kept.
    """
    rollouts = roles.generators.collect(flight.generated)
    reward = roles.reward.score(rollouts, {r.prompt_id: r for _, r in flight.prompts})
    early = None if settings.dynamic_sampling else roles.reference.logprobs(rollouts)   # beside the reward
    scoring = Scoring(rollouts, reward.columns, reward.small())
    shaping: dict[str, float] = {}

    def shape(s: Scoring) -> tuple[np.ndarray, dict[str, float]]:
        return shaped_rewards(s.rewards, s.rollouts.summary, overlong=settings.overlong,
                              max_new_tokens=settings.max_new_tokens, buffer=settings.overlong_buffer,
                              veto_lam=settings.veto_lam)
    if settings.dynamic_sampling:
        scoring, shaping = sample_informative(scoring, wanted=settings.prompts_per_step,
                                              max_rounds=settings.max_sampling_rounds, group_size=settings.group_size,
                                              more=more_rounds(roles.generators, roles.reward, source,
                                                               settings.group_size),
                                              shape=lambda s: shape(s)[0])
    reference = early if early is not None else roles.reference.logprobs(scoring.rollouts)
    rollouts, summary, rewards = scoring.rollouts, scoring.rollouts.summary, scoring.rewards
    ref_small = reference.small()
    shaped, overlong_metrics = shape(scoring)
    # a non-finite reward: advantage exactly 0, row out of the loss (rollout/guards.py)
    groups = summary.column("group_id").to_numpy(zero_copy_only=False)
    advantage, loss_mask = masked_advantages(ADVANTAGES[settings.advantage], shaped, groups, std=settings.std)
    training = columns_batch(TRAINING_FIELDS, {"advantage": advantage, "trained_version": [version] * len(advantage),
                                               "step": [step] * len(advantage), "loss_mask": loss_mask})
    fetched = summary.nbytes + rewards.nbytes + ref_small.nbytes + training.nbytes
    # masked rows carry no loss tokens, so they weigh nothing in their mini-batch's token count
    batch = StepBatch([rollouts.generation, scoring.reward, reference.columns, Columns.whole(training)],
                      summary.num_rows, summary.append_column("loss_mask", pa.array(loss_mask, pa.bool_())))
    train = roles.policy.train_step(batch, version)
    train.update(step_health(loss_mask, train).metrics())
    phases = {"generate": float(np.max(summary.column("generate_seconds").to_numpy(zero_copy_only=False))),
              # every row carries its replica's call time: the slowest replica is the phase's time
              "score": float(np.max(rewards.column("score_seconds").to_numpy(zero_copy_only=False))),
              "reference": float(np.max(ref_small.column("reference_seconds").to_numpy(zero_copy_only=False))),
              "train": train.pop("train_seconds")}
    view = merge_columns(summary, rewards, training)
    return batch, {"train": train, "phases": phases, "view": view, "driver_bytes": fetched,
                   "shaping": {**shaping, **overlong_metrics}}


@dataclass
class LoopState:
    """Where a run stands between steps: what a checkpoint saves and a resume restores."""

    step: int = 0                  # next step to train
    version: int = 0               # current policy version
    inflight: deque = field(default_factory=deque)   # InFlight batches generated ahead of training


def finish_inflight(roles: Roles, inflight: deque) -> list[tuple[InFlight, pa.RecordBatch]]:
    """Wait for every in-flight generation (to checkpoint the rollouts still in the buffer)."""
    return [(f, roles.generators.fetch(f.generated)) for f in inflight]


def run_loop(roles: Roles, source: PromptSource, settings: LoopSettings, state: LoopState, *,
             on_step: Callable[[int, StepBatch, dict[str, Any]], None],
             checkpoint_every: int = 0, on_checkpoint: Callable[[LoopState], None] | None = None) -> LoopState:
    """Train from state.step to settings.steps - 1; returns the final state."""
    pending = None
    launched = state.step + len(state.inflight)
    while state.step < settings.steps:
        step, step_start = state.step, time.perf_counter()
        while len(state.inflight) <= settings.max_staleness and launched < settings.steps:
            state.inflight.append(launch(roles, source, settings, state.version))
            launched += 1
        flight = state.inflight.popleft()
        batch, report = score_and_train(roles, flight, settings, state.version, step, source)
        # async: the previous step's sync has had a whole step to land; sync: wait for this one now
        sync_seconds = roles.sync.wait(pending) if pending is not None else 0.0
        state.version += 1
        pending = roles.sync.start(state.version)
        if settings.max_staleness == 0:
            sync_seconds, pending = roles.sync.wait(pending), None
        report["phases"]["sync"] = sync_seconds
        view = report["view"]
        metrics = {**rollout_metrics(view), **report["train"], **report["shaping"],
                   **phase_metrics(report["phases"], time.perf_counter() - step_start,
                                   int(view.column("response_length").to_numpy().sum())),
                   "driver_bytes": report["driver_bytes"],
                   "rollouts_in_flight": len(state.inflight) * settings.prompts_per_step * settings.group_size}
        state.step += 1
        on_step(step, batch, {"step": step, "policy_version": state.version, **metrics})
        if on_checkpoint and checkpoint_every and state.step % checkpoint_every == 0:
            if pending is not None:
                roles.sync.wait(pending)
                pending = None
            on_checkpoint(state)
    if pending is not None:
        roles.sync.wait(pending)
    return state
