"""Evaluate a policy on suites: generate answers, grade them, and reduce to estimates with intervals.

`evaluate_model` takes any `generate(conversations, ids) -> texts` function (a GeneratorPool's in the
CLI); `evaluate_in_training` takes the training loop's own generator handle and a held-out split.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from promedical.evaluation.extraction import extract_choice, extract_decision
from promedical.evaluation.generation import generate_texts
from promedical.evaluation.grading import VerdictSource, grade_rubrics
from promedical.evaluation.scoring import Estimate, estimate, healthbench_scores, tier_scores
from promedical.evaluation.suites import Suite
from promedical.reward.rubric import RubricRecord
from promedical.reward.aggregate import RewardShape

GenerateFn = Callable[[Sequence[tuple[tuple[str, str], ...]], Sequence[str]], list[str]]
INVALID_WARN_FRACTION = 0.1    # above this share of invalid verdicts a rubric score is flagged as unreliable


@dataclass
class SuiteResult:
    """One suite's estimates (name -> Estimate), notes for the reader, and the per-item samples."""

    suite: str
    kind: str
    n: int
    metrics: dict[str, Estimate]
    notes: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self, with_samples: bool = True) -> dict[str, Any]:
        out = {"suite": self.suite, "kind": self.kind, "n": self.n,
               "metrics": {k: v.as_dict() for k, v in self.metrics.items()},
               "notes": self.notes, "warnings": self.warnings}
        if with_samples:
            out["samples"] = self.samples
        return out


def conversations(suite: Suite) -> tuple[list[tuple[tuple[str, str], ...]], list[str]]:
    """The chats to send for `suite` and their ids, in suite order."""
    if suite.kind == "rubric":
        return ([tuple((m.role, m.content) for m in r.messages) for r in suite.rubrics],
                [r.prompt_id for r in suite.rubrics])
    return [q.messages for q in suite.questions], [q.qid for q in suite.questions]


def score_closed(suite: Suite, texts: Sequence[str]) -> SuiteResult:
    """Accuracy (an unparseable answer counts as wrong) and the unparseable fraction, with intervals."""
    correct, unparseable, rules, samples = [], [], Counter(), []
    for q, text in zip(suite.questions, texts):
        got = extract_choice(text, dict(q.options)) if suite.kind == "choice" else extract_decision(text)
        correct.append(float(got.answer == q.gold))
        unparseable.append(float(got.answer is None))
        rules[got.rule] += 1
        samples.append({"id": q.qid, "gold": q.gold, "answer": got.answer, "rule": got.rule, "response": text})
    metrics = {"accuracy": estimate(correct), "unparseable": estimate(unparseable)}
    return SuiteResult(suite=suite.name, kind=suite.kind, n=len(texts),
                       metrics={k: v for k, v in metrics.items() if v is not None},
                       notes={"extraction_rules": dict(sorted(rules.items()))}, samples=samples)


def score_rubric(suite: Suite, texts: Sequence[str], source: VerdictSource,
                 shape: RewardShape) -> SuiteResult:
    """HealthBench-compatible scores (overall and per axis) and tier scores, invalid verdicts counted."""
    examples, stats = grade_rubrics(suite.rubrics, texts, source)
    metrics: dict[str, Estimate] = {}
    for key, est in healthbench_scores(examples).items():
        metrics["healthbench" if key == "overall" else f"healthbench/{key}"] = est
    metrics.update(tier_scores(examples, shape))
    warnings = []
    if stats.invalid:
        share = stats.invalid / max(stats.total, 1)
        flag = " - scores unreliable" if share > INVALID_WARN_FRACTION else ""
        warnings.append(f"{stats.invalid} of {stats.total} verdicts invalid ({share:.0%}), left out of "
                        f"the scores{flag}: {stats.summary()}")
    if not metrics:
        warnings.append("no example could be scored: every verdict was invalid")
    samples = [{"id": r.prompt_id, "response": t, "met": met}
               for r, t, (_, met) in zip(suite.rubrics, texts, examples)]
    notes = {"grader": source.name, "verdicts": {"total": stats.total, "valid": stats.valid,
                                                 "invalid": stats.invalid, "by_error": stats.by_error}}
    return SuiteResult(suite=suite.name, kind=suite.kind, n=len(texts), metrics=metrics, notes=notes,
                       warnings=warnings, samples=samples)


def evaluate_model(generate: GenerateFn, suites: Sequence[Suite], source: VerdictSource | None,
                   shape: RewardShape = RewardShape()) -> dict[str, SuiteResult]:
    """Generate for every suite in one call (better batching), then score each suite."""
    chats, ids, spans = [], [], []
    for suite in suites:
        c, i = conversations(suite)
        spans.append((len(chats), len(chats) + len(c)))
        chats += c
        ids += i
    texts = generate(chats, ids)
    results = {}
    for suite, (lo, hi) in zip(suites, spans):
        if suite.kind == "rubric":
            if source is None:
                raise ValueError(f"suite {suite.name!r} needs a grader")
            results[suite.name] = score_rubric(suite, texts[lo:hi], source, shape)
        else:
            results[suite.name] = score_closed(suite, texts[lo:hi])
    return results


def evaluate_in_training(generator_handle: Any, records: Sequence[RubricRecord], source: VerdictSource, *,
                         shape: RewardShape = RewardShape(), prefix: str = "eval/") -> dict[str, float]:
    """Flat metrics of the policy behind `generator_handle` (a Ray handle, an in-process Generator or a list)
    on held-out rubric `records`, for the live metric stream.

    Uses the generator as it is configured (the training temperature), one sample per prompt. Keys:
    {prefix}healthbench[ _low/_high] (when the records carry points), {prefix}s1 ... {prefix}reward,
    {prefix}veto_rate, {prefix}invalid_verdicts, {prefix}n.
    """
    handles = generator_handle if isinstance(generator_handle, (list, tuple)) else [generator_handle]
    suite = Suite(name="held_out", kind="rubric", rubrics=tuple(records))
    chats, ids = conversations(suite)
    result = score_rubric(suite, generate_texts(handles, chats, ids), source, shape)
    out: dict[str, float] = {f"{prefix}n": float(result.n),
                             f"{prefix}invalid_verdicts": float(result.notes["verdicts"]["invalid"])}
    for key, est in result.metrics.items():
        name = prefix + key.replace("/axis:", "_").replace("/", "_")
        out[name], out[f"{name}_low"], out[f"{name}_high"] = est.value, est.low, est.high
    return out
