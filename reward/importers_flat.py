"""Importers for the two flat rubric shapes used by other public rubric sets.

Input: JSONL (or one JSON array) of objects, each with a prompt and a rubric list:
  prompt     "prompt" (a string, or chat messages [{role, content}]), or "messages", or "question"
  prompt_id  "prompt_id" or "id" (optional; default `<file stem>-<index>`)
  rubric     "rubric", "rubrics" or "criteria"

flat-points   items {criterion, points, tags?} (HealthBench's shape without its metadata):
              points < 0 -> veto; points > 0 -> proficiency with weight = points; points = 0 is an error.
flat-weighted items {title, description, weight} (e.g. Rubrics-as-Rewards sets, whose titles start with
              "Essential", "Important", "Optional" or "Pitfall"): weight < 0 or a "Pitfall" title -> veto;
              an "Optional" title -> bonus; otherwise proficiency with weight = |weight|.
              Criterion text = "title: description"; the original weight is kept as tag `weight:N`.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from promedical.errors import UserError
from promedical.reward.rubric import Criterion, Message, RubricRecord, Tier

_PROMPT_KEYS = ("prompt", "messages", "question")
_RUBRIC_KEYS = ("rubric", "rubrics", "criteria")


def _objects(path: Path) -> list[tuple[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read as UTF-8 text ({exc}); check the file") from None
    if text.lstrip().startswith("["):
        try:
            return [(f"{path}[{i}]", o) for i, o in enumerate(json.loads(text))]
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg}); fix the JSON array") from None
    out = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                out.append((f"{path}:{lineno}", json.loads(line)))
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}:{lineno}: invalid JSON ({exc.msg}); fix the line") from None
    return out


def _first(obj: dict[str, Any], keys: tuple[str, ...], where: str) -> Any:
    for key in keys:
        if key in obj:
            return obj[key]
    raise UserError(f"{where}: none of the fields {list(keys)}; add one")


def _messages(value: Any, where: str) -> tuple[Message, ...]:
    if isinstance(value, str) and value.strip():
        return (Message("user", value),)
    if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):
        try:
            return tuple(Message(role=str(m["role"]), content=str(m["content"])) for m in value)
        except KeyError as exc:
            raise UserError(f"{where}: prompt message without {exc}; give {{role, content}}") from None
    raise UserError(f"{where}: prompt must be a non-empty string or a list of {{role, content}}")


def _number(item: dict[str, Any], key: str, where: str) -> float:
    value = item.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UserError(f"{where}.{key}: {value!r} is not a finite number; give one")
    return float(value)


def _points_criterion(item: Any, i: int, where: str) -> Criterion:
    if not isinstance(item, dict) or not isinstance(item.get("criterion"), str):
        raise UserError(f"{where}: expected {{criterion: str, points: number}}")
    points = _number(item, "points", where)
    if points == 0:
        raise UserError(f"{where}.points: 0 carries no preference; give a positive or negative number")
    tags = [str(t) for t in item.get("tags", [])]
    axis = next((t.split(":", 1)[1] for t in tags if t.startswith("axis:")), None)
    tier = Tier.VETO if points < 0 else Tier.PROFICIENCY
    return Criterion(id=f"c{i}", text=item["criterion"], tier=tier, weight=max(points, 0.0), axis=axis,
                     tags=(f"points:{points:g}", *tags))


def _weighted_criterion(item: Any, i: int, where: str) -> Criterion:
    if not isinstance(item, dict) or not isinstance(item.get("title"), str):
        raise UserError(f"{where}: expected {{title: str, description: str, weight: number}}")
    weight = _number(item, "weight", where)
    title, description = item["title"].strip(), str(item.get("description", "")).strip()
    head = title.lower()
    if weight < 0 or head.startswith("pitfall"):
        tier = Tier.VETO
    elif head.startswith("optional"):
        tier = Tier.BONUS
    else:
        tier = Tier.PROFICIENCY
        if weight == 0:
            raise UserError(f"{where}.weight: 0 for a proficiency item; give a weight > 0")
    text = f"{title}: {description}" if description else title
    return Criterion(id=f"c{i}", text=text, tier=tier, weight=abs(weight) if tier is Tier.PROFICIENCY else 0.0,
                     tags=(f"weight:{weight:g}",))


def import_flat(paths: list[Path], kind: str) -> list[RubricRecord]:
    """Records from flat rubric files; `kind` is "points" or "weighted"."""
    make = {"points": _points_criterion, "weighted": _weighted_criterion}[kind]
    out: list[RubricRecord] = []
    for path in paths:
        for index, (where, obj) in enumerate(_objects(path)):
            if not isinstance(obj, dict):
                raise UserError(f"{where}: expected an object with a prompt and a rubric")
            messages = _messages(_first(obj, _PROMPT_KEYS, where), where)
            rubric = _first(obj, _RUBRIC_KEYS, where)
            if not isinstance(rubric, list) or not rubric:
                raise UserError(f"{where}: the rubric is empty or not a list; give at least one item")
            criteria = tuple(make(item, i, f"{where}: rubric[{i}]") for i, item in enumerate(rubric))
            pid = obj.get("prompt_id", obj.get("id", f"{path.stem}-{index:04d}"))
            out.append(RubricRecord(prompt_id=str(pid), messages=messages, criteria=criteria,
                                    source=f"flat-{kind}"))
    return out
