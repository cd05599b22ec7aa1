"""Criterion verdicts for rubric suites: a reward-model grader thresholded, or an LLM judge.

Both give one verdict per (instruction, response, criterion) triple: True (met; for a veto criterion,
the harm is present), False, or None (invalid, counted by error code in a JudgeStats).
"""
from __future__ import annotations

from collections import Counter
from typing import Protocol, Sequence

import numpy as np

from promedical.reward_model.graders import Grader
from promedical.reward.injection import instruction_text
from promedical.reward.judge import Judge, JudgeStats, judge_many
from promedical.reward.rubric import Criterion, RubricRecord

Triple = tuple[str, str, Criterion]
Example = tuple[Sequence[Criterion], list[bool | None]]


class VerdictSource(Protocol):
    name: str

    def verdicts(self, items: list[Triple]) -> tuple[list[bool | None], JudgeStats]: ...


def _stats(errors: list[str | None]) -> JudgeStats:
    counts = Counter(e for e in errors if e is not None)
    invalid = sum(counts.values())
    return JudgeStats(total=len(errors), valid=len(errors) - invalid, invalid=invalid, by_error=dict(counts))


class ThresholdVerdicts:
    """A reward-model grader (v in [0, 1]) read as met when v >= threshold; a non-finite v is invalid."""

    def __init__(self, grader: Grader, *, threshold: float = 0.5, name: str = "reward model") -> None:
        self.grader, self.threshold, self.name = grader, threshold, name

    def verdicts(self, items: list[Triple]) -> tuple[list[bool | None], JudgeStats]:
        if not items:
            return [], _stats([])
        values = np.asarray(self.grader.grade([i for i, _, _ in items], [r for _, r, _ in items],
                                              [c for _, _, c in items]), dtype=np.float64)
        finite = np.isfinite(values)
        met = [bool(v >= self.threshold) if ok else None for v, ok in zip(values, finite)]
        return met, _stats([None if ok else "non_finite_score" for ok in finite])


class JudgeVerdicts:
    """An LLM judge (reward/judge.py): one criterion per call; invalid verdicts stay None."""

    def __init__(self, judge: Judge, *, name: str = "LLM judge") -> None:
        self.judge, self.name = judge, name

    def verdicts(self, items: list[Triple]) -> tuple[list[bool | None], JudgeStats]:
        results, stats = judge_many(self.judge, items)
        return [v.met for v in results], stats


def grade_rubrics(records: Sequence[RubricRecord], responses: Sequence[str],
                  source: VerdictSource) -> tuple[list[Example], JudgeStats]:
    """Every criterion of every record judged against that record's response, as one batch."""
    items: list[Triple] = []
    for record, response in zip(records, responses):
        instruction = instruction_text(record)
        items += [(instruction, response, c) for c in record.criteria]
    met, stats = source.verdicts(items)
    examples: list[Example] = []
    cursor = 0
    for record in records:
        k = len(record.criteria)
        examples.append((record.criteria, list(met[cursor:cursor + k])))
        cursor += k
    return examples, stats
