"""One rubric record <-> its JSON-shaped dict, with strict validation shared by the JSONL and Parquet readers.

Both readers (rubric_io.py, rubric_parquet.py) import this module and never each other.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

from promedical.reward.rubric import (Criterion, LabelledResponse, Message, PairwisePreference,
                                      RubricRecord, Tier)

MAX_FIELD_CHARS = 100_000
TIERS = [t.value for t in Tier]


class RecordProblems(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _str(obj: dict, key: str, where: str, problems: list[str], required: bool = True) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            problems.append(f"{where}.{key}: missing; add a non-empty string")
        return None
    if not isinstance(value, str):
        problems.append(f"{where}.{key}: expected a string, got {type(value).__name__}")
        return None
    if required and not value.strip():
        problems.append(f"{where}.{key}: empty; give a non-empty string")
    if len(value) > MAX_FIELD_CHARS:
        problems.append(f"{where}.{key}: {len(value)} characters, over the {MAX_FIELD_CHARS} limit; shorten it")
    return value


def _criterion(obj: Any, i: int, problems: list[str]) -> Criterion | None:
    where = f"criteria[{i}]"
    if not isinstance(obj, dict):
        problems.append(f"{where}: expected an object, got {type(obj).__name__}")
        return None
    known = {"id", "text", "tier", "weight", "axis", "tags", "pattern"}
    for key in obj:
        if key not in known:
            problems.append(f"{where}.{key}: unknown field; known fields: {', '.join(sorted(known))}")
    cid, text = _str(obj, "id", where, problems), _str(obj, "text", where, problems)
    tier = obj.get("tier")
    if tier not in TIERS:
        problems.append(f"{where}.tier: {tier!r} is not one of {TIERS}")
    weight = obj.get("weight", 0.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
        problems.append(f"{where}.weight: {weight!r} must be a finite number")
        weight = 0.0
    elif weight < 0:
        problems.append(f"{where}.weight: {weight} is negative; weights are >= 0 (mark harms as veto)")
    elif tier == "proficiency" and weight == 0:
        problems.append(f"{where}.weight: a proficiency criterion needs a weight > 0")
    axis = _str(obj, "axis", where, problems, required=False)
    tags = obj.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        problems.append(f"{where}.tags: expected a list of strings")
        tags = []
    pattern = _str(obj, "pattern", where, problems, required=False)
    if pattern is not None:
        import re
        try:
            re.compile(pattern)
        except re.error as exc:
            problems.append(f"{where}.pattern: invalid regex ({exc})")
    if cid is None or text is None or tier not in TIERS:
        return None
    return Criterion(id=cid, text=text, tier=Tier(tier), weight=float(weight), axis=axis,
                     tags=tuple(tags), pattern=pattern)


def record_from_dict(obj: Any) -> RubricRecord:
    """Validate one record; raise RecordProblems listing every problem found."""
    problems: list[str] = []
    if not isinstance(obj, dict):
        raise RecordProblems([f"record: expected a JSON object, got {type(obj).__name__}"])
    known = {"prompt_id", "messages", "criteria", "responses", "pairs", "source", "tags"}
    for key in obj:
        if key not in known:
            problems.append(f"{key}: unknown field; known fields: {', '.join(sorted(known))}")
    prompt_id = _str(obj, "prompt_id", "record", problems)
    messages: list[Message] = []
    raw_messages = obj.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        problems.append("messages: missing or empty; give a list of {role, content}")
    else:
        for i, m in enumerate(raw_messages):
            if not isinstance(m, dict):
                problems.append(f"messages[{i}]: expected an object")
                continue
            role = m.get("role")
            if role not in ("system", "user", "assistant"):
                problems.append(f"messages[{i}].role: {role!r} is not system, user or assistant")
            content = _str(m, "content", f"messages[{i}]", problems)
            if isinstance(role, str) and content is not None:
                messages.append(Message(role=role, content=content))
    criteria: list[Criterion] = []
    raw_criteria = obj.get("criteria")
    if not isinstance(raw_criteria, list) or not raw_criteria:
        problems.append("criteria: missing or empty; give at least one criterion")
    else:
        for i, c in enumerate(raw_criteria):
            crit = _criterion(c, i, problems)
            if crit is not None:
                criteria.append(crit)
        ids = [c.id for c in criteria]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            problems.append(f"criteria: duplicate ids {dupes}; make each id unique within the record")
        if criteria and not any(c.tier is Tier.PROFICIENCY for c in criteria):
            problems.append("criteria: no proficiency criterion; S1 needs at least one")
    responses = _responses(obj.get("responses", []), {c.id for c in criteria}, problems)
    pairs = _pairs(obj.get("pairs", []), len(responses), {c.id for c in criteria}, problems)
    source = _str(obj, "source", "record", problems, required=False)
    tags = obj.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        problems.append("tags: expected a list of strings")
        tags = []
    if problems:
        raise RecordProblems(problems)
    return RubricRecord(prompt_id=prompt_id, messages=tuple(messages), criteria=tuple(criteria),
                        responses=tuple(responses), pairs=tuple(pairs), source=source, tags=tuple(tags))


def _responses(raw: Any, criterion_ids: set[str], problems: list[str]) -> list[LabelledResponse]:
    if not isinstance(raw, list):
        problems.append("responses: expected a list")
        return []
    out = []
    for i, r in enumerate(raw):
        if not isinstance(r, dict):
            problems.append(f"responses[{i}]: expected an object")
            continue
        text = _str(r, "text", f"responses[{i}]", problems)
        labels = r.get("labels", {})
        if not isinstance(labels, dict) or not all(isinstance(v, bool) for v in labels.values()):
            problems.append(f"responses[{i}].labels: expected an object of criterion id -> true/false")
            labels = {}
        for cid in labels:
            if cid not in criterion_ids:
                problems.append(f"responses[{i}].labels.{cid}: no criterion with that id")
        if text is not None:
            out.append(LabelledResponse(text=text, labels=dict(labels)))
    return out


def _pairs(raw: Any, n_responses: int, criterion_ids: set[str], problems: list[str]) -> list[PairwisePreference]:
    if not isinstance(raw, list):
        problems.append("pairs: expected a list")
        return []
    out = []
    for i, p in enumerate(raw):
        if not isinstance(p, dict):
            problems.append(f"pairs[{i}]: expected an object")
            continue
        cid, w, l = p.get("criterion_id"), p.get("winner"), p.get("loser")
        if cid not in criterion_ids:
            problems.append(f"pairs[{i}].criterion_id: {cid!r} names no criterion of this record")
        ok = all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x < n_responses for x in (w, l))
        if not ok or w == l:
            problems.append(f"pairs[{i}]: winner and loser must be distinct response indices < {n_responses}")
        elif cid in criterion_ids:
            out.append(PairwisePreference(criterion_id=cid, winner=w, loser=l))
    return out


def record_to_dict(rec: RubricRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "prompt_id": rec.prompt_id,
        "messages": [{"role": m.role, "content": m.content} for m in rec.messages],
        "criteria": [],
    }
    for c in rec.criteria:
        item: dict[str, Any] = {"id": c.id, "text": c.text, "tier": c.tier.value, "weight": c.weight}
        if c.axis is not None:
            item["axis"] = c.axis
        if c.tags:
            item["tags"] = list(c.tags)
        if c.pattern is not None:
            item["pattern"] = c.pattern
        out["criteria"].append(item)
    if rec.responses:
        out["responses"] = [{"text": r.text, "labels": dict(r.labels)} for r in rec.responses]
    if rec.pairs:
        out["pairs"] = [{"criterion_id": p.criterion_id, "winner": p.winner, "loser": p.loser} for p in rec.pairs]
    if rec.source is not None:
        out["source"] = rec.source
    if rec.tags:
        out["tags"] = list(rec.tags)
    return out


def collect_records(rows: Iterable[tuple[str, int, Any]], unit: str,
                    problems: list[str]) -> list[RubricRecord]:
    """Validate parsed rows given as (where, number, object); problems go to `problems`.

    A repeated prompt_id is reported against the `unit` ("line", "row") that first used it.
    """
    records: list[RubricRecord] = []
    seen: dict[str, int] = {}
    for where, number, obj in rows:
        try:
            rec = record_from_dict(obj)
        except RecordProblems as exc:
            problems += [f"{where}: {p}" for p in exc.problems]
            continue
        if rec.prompt_id in seen:
            problems.append(f"{where}: prompt_id: {rec.prompt_id!r} already used on {unit} {seen[rec.prompt_id]}")
            continue
        seen[rec.prompt_id] = number
        records.append(rec)
    return records
