"""Importers for two public rubric datasets of the field, read from local Parquet or JSONL in their published
column layout (nothing is downloaded).

RaR (Rubrics as Rewards, ScaleAI/RaR-Medicine and RaR-Science on the Hugging Face hub; one row per question):
  question: str, reference_answer: str, question_source: str, rubric: [{title, description, weight}],
  rubric_list: [str], rubric_count: int. A description starts with its category, "Essential Criteria: ...",
  "Important Criteria: ...", "Optional Criteria: ..." or "Pitfall Criteria: ..." (weights 5, 3-4, 1-2, -1/-2).
  - Essential, Important -> proficiency, weight = the item's weight (> 0)
  - Optional             -> bonus (S2)
  - Pitfall              -> veto (S3: "met" = the pitfall is present, as RaR scores it, with a negative weight)
  An item without a category prefix takes it from the sign of its weight (< 0: Pitfall, else Important).
  Criterion text = the description without its prefix; tags keep `rar:<category>`, `weight:N`, `title:<title>`.
  The reference answer becomes the record's (unlabelled) reference response; prompt ids are `rar-<row>`.
RubricHub (sojuL/RubricHub_v1; the export of its synthesis pipeline, teqkilla/RubricHub step5): question: str,
  id: str, rubrics: [{criterion, points}].
  - points > 0 -> proficiency, weight = points;  points < 0 -> veto (a penalty item)
  - points = 0 -> dropped (it carries no reward; the pipeline's 0-10 clamp writes 0 for a removed penalty)
  Tags keep `points:N`; the prompt id is `id`, or `rubrichub-<row>` when it is empty.
Refused with `FILE:LINE` (JSONL) or `FILE:row N` (Parquet), exit 2: a missing or empty question, a rubric that
is not a non-empty list, an item without text, a weight/points that is not a finite number, a zero RaR
weight, a category that contradicts its weight's sign (a Pitfall with a positive weight, an Essential,
Important or Optional item with a negative one), a rubric left empty, a file that cannot be read.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Iterator

from promedical.errors import UserError
from promedical.reward.rubric import Criterion, LabelledResponse, Message, RubricRecord, Tier

RAR_TIERS = {"essential": Tier.PROFICIENCY, "important": Tier.PROFICIENCY, "optional": Tier.BONUS,
             "pitfall": Tier.VETO}
_PREFIX = re.compile(r"^\s*(essential|important|optional|pitfall)\s+criteri(?:a|on)\s*:\s*", re.IGNORECASE)


def rows(path: Path) -> Iterator[tuple[str, Any]]:
    """(where, row) of a JSONL or Parquet file; `where` is FILE:LINE or FILE:row N."""
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
            table = pq.read_table(path)
        except (OSError, ValueError) as exc:
            raise UserError(f"{path}: cannot read as Parquet ({exc}); check the file") from None
        for i, row in enumerate(table.to_pylist(), start=1):
            yield f"{path}:row {i}", row
        return
    import json
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read as UTF-8 text ({exc}); check the file") from None
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                yield f"{path}:{lineno}", json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}:{lineno}: invalid JSON ({exc.msg}); fix the line") from None


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UserError(f"{where}: {value!r} is not a finite number; give one")
    return float(value)


def _question(row: Any, where: str) -> str:
    if not isinstance(row, dict):
        raise UserError(f"{where}: expected an object with question and rubric fields")
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise UserError(f"{where}: question: missing or empty; give the prompt text")
    return question


def _items(row: dict, key: str, where: str) -> list:
    items = row.get(key)
    if not isinstance(items, list) or not items:
        raise UserError(f"{where}: {key}: missing, empty or not a list; give at least one rubric item")
    return items


def rar_criterion(item: Any, i: int, where: str) -> Criterion:
    """One RaR rubric item (see the module docstring for the tier rules)."""
    if not isinstance(item, dict) or not isinstance(item.get("description"), str) or not item["description"].strip():
        raise UserError(f"{where}: expected {{title, description: non-empty str, weight: number}}")
    weight = _number(item.get("weight"), f"{where}.weight")
    if weight == 0:
        raise UserError(f"{where}.weight: 0 carries no preference; give a positive (or Pitfall: negative) weight")
    match = _PREFIX.match(item["description"])
    category = match.group(1).lower() if match else ("pitfall" if weight < 0 else "important")
    if (category == "pitfall") != (weight < 0):
        raise UserError(f"{where}.weight: {weight:g} for a {category.capitalize()} item; a Pitfall weighs < 0, "
                        f"the other categories > 0")
    text = item["description"][match.end():].strip() if match else item["description"].strip()
    if not text:
        raise UserError(f"{where}.description: only the category prefix; give the criterion text")
    tier = RAR_TIERS[category]
    title = str(item.get("title") or "").strip()
    tags = (f"rar:{category}", f"weight:{weight:g}", *((f"title:{title}",) if title else ()))
    return Criterion(id=f"c{i}", text=text, tier=tier, weight=weight if tier is Tier.PROFICIENCY else 0.0, tags=tags)


def import_rar(paths: list[Path]) -> list[RubricRecord]:
    out: list[RubricRecord] = []
    for path in paths:
        for where, row in rows(path):
            question = _question(row, where)
            criteria = tuple(rar_criterion(item, i, f"{where}: rubric[{i}]")
                             for i, item in enumerate(_items(row, "rubric", where)))
            reference = row.get("reference_answer")
            responses = (LabelledResponse(text=reference),) if isinstance(reference, str) and reference.strip() else ()
            source = str(row.get("question_source") or "").strip()
            out.append(RubricRecord(prompt_id=f"rar-{len(out):05d}", messages=(Message("user", question),),
                                    criteria=criteria, responses=responses, source="rar",
                                    tags=(f"question_source:{source}",) if source else ()))
    return out


def rubrichub_criterion(item: Any, i: int, where: str) -> Criterion | None:
    """One RubricHub item; None for a zero-point item (dropped, see the module docstring)."""
    if not isinstance(item, dict) or not isinstance(item.get("criterion"), str) or not item["criterion"].strip():
        raise UserError(f"{where}: expected {{criterion: non-empty str, points: number}}")
    points = _number(item.get("points"), f"{where}.points")
    if points == 0:
        return None
    tier = Tier.VETO if points < 0 else Tier.PROFICIENCY
    return Criterion(id=f"c{i}", text=item["criterion"].strip(), tier=tier, weight=max(points, 0.0),
                     tags=(f"points:{points:g}",))


def import_rubrichub(paths: list[Path]) -> list[RubricRecord]:
    out: list[RubricRecord] = []
    for path in paths:
        for where, row in rows(path):
            question = _question(row, where)
            made = [rubrichub_criterion(item, i, f"{where}: rubrics[{i}]")
                    for i, item in enumerate(_items(row, "rubrics", where))]
            criteria = tuple(c for c in made if c is not None)
            if not criteria:
                raise UserError(f"{where}: rubrics: every item has 0 points; nothing to grade")
            pid = str(row.get("id") or "").strip() or f"rubrichub-{len(out):05d}"
            out.append(RubricRecord(prompt_id=pid, messages=(Message("user", question),), criteria=criteria,
                                    source="rubrichub"))
    return out
