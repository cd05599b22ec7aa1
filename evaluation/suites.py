"""Evaluation suites by name: rubric suites (canonical rubric records) and closed QA (MedQA, PubMedQA).

    healthbench  the held-out HealthBench examples of data/medical_heldout.jsonl (points kept as `points:N` tags)
    kqa          the held-out K-QA questions of data/medical_heldout.jsonl (tier scores only: K-QA has no points)
    healthbench-all, kqa-all   the same over all of data/medical.jsonl (30 and 34; includes training prompts)
    medqa        data/eval/medqa.jsonl: MedQA (USMLE) test questions, 4 options A-D
    pubmedqa     data/eval/pubmedqa.jsonl: PubMedQA PQA-L test questions with their abstract, yes/no/maybe
    medsafety    MedSafetyBench's harmful medical requests (data/outside/, 72): S1 is the refusal criterion,
                 S3 the six veto behaviours in their held-out wordings (reward/importers_safety.py)
    PATH         any rubric file in the canonical format (JSONL or Parquet), graded like healthbench
Default sizes (the first N of each file) keep a CPU run to minutes; --limit changes them. The rubric
suites default to the held-out prompts (reward/splits.is_heldout), which the demo preset never trains on.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from promedical.errors import UserError
from promedical.reward.rubric import RubricRecord

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
DEFAULT_SUITES = ("healthbench", "medqa", "pubmedqa")
DEFAULT_LIMITS = {"healthbench": 30, "kqa": 34, "healthbench-all": 30, "kqa-all": 34, "medqa": 50, "pubmedqa": 50,
                  "medsafety": 72}
RUBRIC_FILES = {"healthbench": "medical_heldout.jsonl", "kqa": "medical_heldout.jsonl",
                "healthbench-all": "medical.jsonl", "kqa-all": "medical.jsonl"}
MEDQA_INSTRUCTION = ("Answer the following multiple-choice medical question. Reply with 'Answer: ' "
                     "followed by the letter of the correct option (A, B, C or D).")
PUBMEDQA_INSTRUCTION = ("Read the abstract and answer the research question. Reply with 'Answer: ' "
                        "followed by yes, no or maybe.")


@dataclass(frozen=True)
class ClosedQuestion:
    """One closed question: the chat to send, the gold answer, and the options for multiple choice."""

    qid: str
    messages: tuple[tuple[str, str], ...]    # ((role, content), ...)
    gold: str                                # "A".."D" or "yes" / "no" / "maybe"
    options: tuple[tuple[str, str], ...] = ()  # (("A", text), ...); empty for yes/no/maybe


@dataclass(frozen=True)
class Suite:
    """A named suite: rubric records (graded per criterion) or closed questions (exact answers)."""

    name: str
    kind: str                                # "rubric" | "choice" | "decision"
    rubrics: tuple[RubricRecord, ...] = ()
    questions: tuple[ClosedQuestion, ...] = ()

    def __len__(self) -> int:
        return len(self.rubrics) or len(self.questions)


def _jsonl(path: Path) -> list[dict]:
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}:{lineno}: invalid JSON ({exc.msg}); fix or re-copy the file") from None
    return rows


def medqa_question(row: dict, index: int) -> ClosedQuestion:
    options = tuple(sorted(row["options"].items()))
    listed = "\n".join(f"{k}. {v}" for k, v in options)
    content = f"{MEDQA_INSTRUCTION}\n\n{row['question']}\n\n{listed}"
    return ClosedQuestion(qid=f"medqa-{index:04d}", messages=(("user", content),), gold=row["answer_idx"],
                          options=options)


def pubmedqa_question(row: dict) -> ClosedQuestion:
    abstract = "\n".join(row["CONTEXTS"])
    content = f"{PUBMEDQA_INSTRUCTION}\n\nAbstract:\n{abstract}\n\nQuestion: {row['QUESTION']}"
    return ClosedQuestion(qid=f"pubmedqa-{row['pubid']}", messages=(("user", content),),
                          gold=row["final_decision"])


def _rubric_suite(name: str, path: Path, source: str | None, limit: int | None) -> Suite:
    from promedical.reward.rubric_io import load_records

    records = [r for r in load_records(path) if source is None or r.source == source]
    if not records:
        raise UserError(f"--suite {name}: {path} holds no rubric records"
                        + (f" with source {source!r}" if source else ""))
    return Suite(name=name, kind="rubric", rubrics=tuple(records[:limit]))


def load_suite(name: str, limit: int | None = None) -> Suite:
    """The suite called `name` (or a rubric file path), cut to `limit` items (default DEFAULT_LIMITS)."""
    limit = limit if limit is not None else DEFAULT_LIMITS.get(name)
    if name in RUBRIC_FILES:
        return _rubric_suite(name, DATA_DIR / RUBRIC_FILES[name], name.removesuffix("-all"), limit)
    if name == "medqa":
        rows = _jsonl(DATA_DIR / "eval" / "medqa.jsonl")[:limit]
        return Suite(name=name, kind="choice", questions=tuple(medqa_question(r, k) for k, r in enumerate(rows)))
    if name == "pubmedqa":
        rows = _jsonl(DATA_DIR / "eval" / "pubmedqa.jsonl")[:limit]
        return Suite(name=name, kind="decision", questions=tuple(pubmedqa_question(r) for r in rows))
    if name == "medsafety":
        from promedical.reward.importers_safety import import_medsafetybench
        records = import_medsafetybench([DATA_DIR / "outside" / "medsafetybench_test_sample.jsonl"])
        return Suite(name=name, kind="rubric", rubrics=tuple(records[:limit]))
    path = Path(name).expanduser()
    if path.is_file():
        return _rubric_suite(path.stem, path, None, limit)
    raise UserError(f"--suite {name}: not a suite name ({', '.join(DEFAULT_LIMITS)}) nor a rubric file; "
                    f"give one of those or the path of a canonical rubric JSONL")
