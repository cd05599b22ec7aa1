"""Explicit Criteria Injection: how one (instruction, response, criterion) triple becomes model input.

The reward model reads a text pair: (criterion + instruction, response). Putting the criterion first
keeps it inside the truncation window when the instruction or the response is long; the response
is truncated first.
"""
from __future__ import annotations

from promedical.reward.rubric import Criterion, RubricRecord

NO_CRITERION = "(any criterion)"


def instruction_text(record: RubricRecord) -> str:
    """The conversation as plain text, turns prefixed by role."""
    return "\n".join(f"{m.role}: {m.content}" for m in record.messages)


def inject(instruction: str, response: str, criterion: str | None) -> tuple[str, str]:
    """The (first, second) text pair for a cross-encoder; criterion None = the criterion-agnostic baseline."""
    shown = criterion if criterion is not None else NO_CRITERION
    return f"Criterion: {shown}\nInstruction: {instruction}", response


def triples_for(record: RubricRecord, response: str) -> list[tuple[Criterion, tuple[str, str]]]:
    """One injected input per criterion of the record's rubric, in rubric order."""
    instruction = instruction_text(record)
    return [(c, inject(instruction, response, c.text)) for c in record.criteria]
