"""RewardModel role: scores every (response, criterion) pair of a batch and rolls them up into S1/S2/S3.

All triples of a batch go through the grader together (batched forward passes), then the named
aggregator turns each response's per-criterion v_i into S1, S2, S3 and the GRPO reward. A group
aggregator (lexicographic, gdpo) then re-scores the reward from the S1, S2, S3 of each row's whole
GRPO group (the batch's group_id column).
"""
from __future__ import annotations

import time
from typing import Callable

import pyarrow as pa

import numpy as np

from promedical.reward.aggregate import AGGREGATORS, GROUP_AGGREGATORS, RewardShape, promedical
from promedical.reward_model.graders import make_grader
from promedical.reward.injection import instruction_text
from promedical.reward.rubric import Criterion, RubricRecord
from promedical.storage.schema import REWARD_FIELDS, columns_batch


class RewardModel:
    def __init__(self, *, grader: str, model_path: str | None, aggregator: str, shape: RewardShape,
                 batch_size: int = 64, max_length: int = 256, threads: int = 0, dtype: str = "auto") -> None:
        self.grader = make_grader(grader, model_path, max_length=max_length, batch_size=batch_size,
                                  threads=threads, dtype=dtype)
        self.aggregate, self.group_aggregate = aggregators(aggregator, shape)
        self.shape = shape                  # built once from the config (deploy/config.reward_shape)

    def score(self, batch: pa.RecordBatch, rubrics: dict[str, RubricRecord]) -> pa.RecordBatch:
        """REWARD_FIELDS for every row of `batch` (needs prompt_id and response_text)."""
        return reward_columns(batch, rubrics, lambda i, r, c: (self.grader.grade(i, r, c), None),
                              aggregate=self.aggregate, group_aggregate=self.group_aggregate, shape=self.shape)


def aggregators(aggregator: str, shape: RewardShape):
    """(row aggregator, group aggregator or None) named `aggregator`; ValueError for a bad name or shape."""
    if aggregator not in AGGREGATORS and aggregator not in GROUP_AGGREGATORS:
        raise ValueError(f"aggregator {aggregator!r}: choose one of {[*AGGREGATORS, *GROUP_AGGREGATORS]}")
    problems = shape.problems()
    if problems:
        raise ValueError("; ".join(problems))
    return AGGREGATORS.get(aggregator, promedical), GROUP_AGGREGATORS.get(aggregator)


Grade = Callable[[list[str], list[str], list[Criterion]], tuple[np.ndarray, "list[str] | None"]]


def reward_columns(batch: pa.RecordBatch, rubrics: dict[str, RubricRecord], grade: Grade, *, aggregate,
                   group_aggregate, shape: RewardShape) -> pa.RecordBatch:
    """REWARD_FIELDS of every row: all (instruction, response, criterion) triples of the batch graded in
    one `grade` call -> (v per triple, error code per triple or None), then each row's v aggregated.

    Triples are in row order, each row's criteria in rubric order, so the criteria of one response are
    adjacent (a judge's prefix cache serves them). A NaN v makes its row's reward NaN (masked in training).
    """
    start = time.perf_counter()
    prompt_ids = batch.column("prompt_id").to_pylist()
    texts = batch.column("response_text").to_pylist()
    instructions, responses, criteria = [], [], []
    for pid, text in zip(prompt_ids, texts):
        record = rubrics[pid]
        instruction = instruction_text(record)
        for criterion in record.criteria:
            instructions.append(instruction)
            responses.append(text)
            criteria.append(criterion)
    values, errors = grade(instructions, responses, criteria)
    cols: dict[str, list] = {f.name: [] for f in REWARD_FIELDS}
    cursor, unknown = 0, []
    elapsed = time.perf_counter() - start
    for pid in prompt_ids:
        record = rubrics[pid]
        k = len(record.criteria)
        v = values[cursor:cursor + k]
        tiers = [c.tier.value for c in record.criteria]
        scores = aggregate(v, tiers, [c.weight for c in record.criteria], shape)
        cols["criterion_ids"].append([c.id for c in record.criteria])
        cols["criterion_tiers"].append(tiers)
        cols["criterion_scores"].append([float(x) for x in v])
        cols["criterion_errors"].append(None if errors is None else [e or "" for e in errors[cursor:cursor + k]])
        cols["s1"].append(scores.s1)
        cols["s2"].append(scores.s2)
        cols["s3"].append(scores.s3)
        cols["reward"].append(scores.reward)
        cols["score_seconds"].append(elapsed)
        unknown.append(not np.isfinite(np.asarray(v, dtype=np.float64)).all())
        cursor += k
    if group_aggregate is not None:
        tiers_of = [np.asarray(cols[k], dtype=np.float64) for k in ("s1", "s2", "s3")]
        groups = batch.column("group_id").to_numpy(zero_copy_only=False)
        cols["reward"] = group_aggregate(*tiers_of, groups, shape).tolist()
    # a threshold (bonus, veto) reads NaN as "not met": the row's reward is NaN instead, never a guess
    cols["reward"] = [float("nan") if bad else r for r, bad in zip(cols["reward"], unknown)]
    return columns_batch(REWARD_FIELDS, cols)
