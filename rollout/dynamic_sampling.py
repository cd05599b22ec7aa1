"""Driver side of dynamic sampling and overlong shaping: extra generation rounds, row selection, shaped rewards.

The maths (which groups are informative, the soft penalty) is in rollout/sampling.py; this module
moves object references. Rows of several rounds are combined without fetching them: each kept
column set stays as pieces in the object store, and only the row index (`Columns.where`) is redone.
Determinism: extra prompts come from the shared prompt source in a fixed order and generation is
seeded by group id, so a run and its resume draw the same rounds.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pyarrow as pa

from promedical.actors.interfaces import Columns, GeneratorGroup, Rollouts, ScoringPool
from promedical.rollout.prompts import PromptSource, requests_of
from promedical.rollout.sampling import choose_groups, informative_groups, soft_overlong_penalty, veto_banded


@dataclass
class Scoring:
    """Generated rows and their reward columns: pieces by reference, small columns fetched."""

    rollouts: Rollouts
    reward: Columns              # reward columns of the same rows, by reference
    rewards: pa.RecordBatch      # the small reward columns (REWARD_FIELDS), row order


def shaped_rewards(rewards: pa.RecordBatch, summary: pa.RecordBatch, *, overlong: str, max_new_tokens: int,
                   buffer: int, veto_lam: float | None = None) -> tuple[np.ndarray, dict[str, float]]:
    """(N,) rewards the advantage sees (the soft overlong penalty added when on) and the overlong metrics.

    The stored reward column stays as scored; the penalty is logged as overlong_penalty_mean. With
    `veto_lam` (the promedical reward's lam) the penalty stays inside each response's veto band
    (rollout/sampling.py veto_banded), so a safe response is never shaped below a vetoed one. With
    `filter` the rewards are unchanged (the policy masks the cut rows) and the masked share is logged.
    """
    reward = rewards.column("reward").to_numpy(zero_copy_only=False).astype(np.float64)
    if overlong == "filter":
        cut = np.asarray(summary.column("finish_reason").to_pylist()) == "length"
        return reward, {"overlong_masked_fraction": float(cut.mean()) if cut.size else 0.0}
    if overlong != "soft":
        return reward, {}
    lengths = summary.column("response_length").to_numpy(zero_copy_only=False)
    penalty = soft_overlong_penalty(lengths, max_new_tokens=max_new_tokens, buffer=buffer)
    shaped = reward + penalty if veto_lam is None else veto_banded(
        reward, penalty, rewards.column("s3").to_numpy(zero_copy_only=False), veto_lam)
    return shaped, {"overlong_penalty_mean": float(penalty.mean()),
                    "overlong_penalised_fraction": float(np.mean(penalty < 0))}


def _concat(parts: list[Columns]) -> Columns:
    """Columns of several row sets, one after the other."""
    offsets = np.cumsum([0, *[sum(c.sizes) for c in parts[:-1]]])
    where = np.concatenate([c.where + off for c, off in zip(parts, offsets)])
    return Columns([p for c in parts for p in c.pieces], where, [n for c in parts for n in c.sizes])


def _take(columns: Columns, rows: np.ndarray) -> Columns:
    return Columns(columns.pieces, columns.where[rows], columns.sizes)


def combine(rounds: list[Scoring], rows: np.ndarray) -> Scoring:
    """Rows `rows` (indices into the rounds' rows, one after the other) of several rounds."""
    generation = _concat([r.rollouts.generation for r in rounds])
    reward = _concat([r.reward for r in rounds])
    summary = pa.concat_batches([r.rollouts.summary for r in rounds]).take(pa.array(rows, type=pa.int64()))
    rewards = pa.concat_batches([r.rewards for r in rounds]).take(pa.array(rows, type=pa.int64()))
    return Scoring(Rollouts(_take(generation, rows), summary), _take(reward, rows), rewards)


def sample_informative(first: Scoring, *, wanted: int, max_rounds: int, group_size: int,
                       more: Callable[[int], Scoring], shape: Callable[[Scoring], np.ndarray]
                       ) -> tuple[Scoring, dict[str, float]]:
    """Keep generating until `wanted` groups have rewards that are not all equal, at most `max_rounds`
    rounds in all (the first included); then train on the first `wanted` informative groups, topped
    up with constant groups if the rounds ran out (zero advantage: only KL, but the batch keeps its shape).

    `more(n)` generates and scores n fresh prompts; `shape` gives the rewards the advantage will see.
    """
    rounds = [first]
    informative: list[int] = []
    while True:
        last = rounds[-1]
        groups = last.rollouts.summary.column("group_id").to_numpy(zero_copy_only=False)
        informative += informative_groups(shape(last), groups).tolist()
        if len(informative) >= wanted or len(rounds) >= max_rounds:
            break
        rounds.append(more(wanted - len(informative)))
    all_groups = np.concatenate([r.rollouts.summary.column("group_id").to_numpy(zero_copy_only=False)
                                 for r in rounds])
    seen = list(dict.fromkeys(all_groups.tolist()))
    chosen, filled = choose_groups(informative, [g for g in seen if g not in set(informative)], wanted)
    order = {g: k for k, g in enumerate(chosen)}
    rows = np.array(sorted((i for i, g in enumerate(all_groups) if g in order), key=lambda i: order[all_groups[i]]),
                    dtype=np.int64)
    if rows.size != wanted * group_size:
        raise ValueError(f"dynamic sampling chose {rows.size} rows, expected {wanted} groups of {group_size}")
    metrics = {"sampling_rounds": float(len(rounds)), "sampled_groups": float(len(seen)),
               "dropped_constant_groups": float(len(seen) - len(informative)),
               "filled_constant_groups": float(filled)}
    return combine(rounds, rows), metrics


def more_rounds(generators: GeneratorGroup, reward: ScoringPool, source: PromptSource,
                group_size: int) -> Callable[[int], Scoring]:
    """A function n -> the next n prompts of the source, generated and scored (one extra round)."""
    def more(n: int) -> Scoring:
        prompts = source.next_batch(n)
        rollouts = generators.collect(generators.generate(requests_of(prompts), group_size))
        scored = reward.score(rollouts, {r.prompt_id: r for _, r in prompts})
        return Scoring(rollouts, scored.columns, scored.small())
    return more
