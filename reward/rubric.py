"""The canonical rubric format: a prompt (chat messages) with its own three-tier rubric."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Tier(str, Enum):
    """Which roll-up a criterion feeds: S1 proficiency, S2 excellence bonus, S3 safety veto."""

    PROFICIENCY = "proficiency"
    BONUS = "bonus"
    VETO = "veto"


@dataclass(frozen=True)
class Criterion:
    """One rubric criterion, shown to the reward model on its own (Explicit Criteria Injection)."""

    id: str
    text: str
    tier: Tier
    weight: float = 0.0                # proficiency only: relative weight, normalised per rubric
    axis: str | None = None            # e.g. "accuracy", "completeness", "communication"
    tags: tuple[str, ...] = ()
    pattern: str | None = None         # optional regex for the rule grader (tests, tiny preset)


@dataclass(frozen=True)
class Message:
    role: str                          # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True)
class LabelledResponse:
    """A response with per-criterion verdicts (True = criterion met; for veto: violation present)."""

    text: str
    labels: dict[str, bool] = field(default_factory=dict)


@dataclass(frozen=True)
class PairwisePreference:
    """For one criterion, response `winner` is better than `loser` (indices into `responses`)."""

    criterion_id: str
    winner: int
    loser: int


@dataclass(frozen=True)
class RubricRecord:
    """One instruction with its rubric, and optionally graded responses and pairwise preferences."""

    prompt_id: str
    messages: tuple[Message, ...]
    criteria: tuple[Criterion, ...]
    responses: tuple[LabelledResponse, ...] = ()
    pairs: tuple[PairwisePreference, ...] = ()
    source: str | None = None          # importer that produced the record, e.g. "healthbench"
    tags: tuple[str, ...] = ()

    def by_tier(self, tier: Tier) -> list[Criterion]:
        return [c for c in self.criteria if c.tier is tier]
