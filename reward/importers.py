"""Importers from public rubric datasets into the canonical rubric format.

HealthBench (`[{criterion, points, tags}]`, tags `axis:*`, `level:*`, `cluster:*`):
  - points > 0 and axis communication_quality      -> bonus (S2: an excellence criterion)
  - points > 0 otherwise                           -> proficiency, weight = points
  - points < 0                                     -> veto (the criterion describes a harm; met = violated)
  Every original field is kept: `points:N` and all tags go into the criterion's tags, so nothing is lost.
K-QA: Must_have statements -> proficiency (weight 1), Nice_to_have statements -> bonus.
flat-points / flat-weighted: see reward/importers_flat.py.
rar (Rubrics as Rewards) / rubrichub: their published Parquet or JSONL layouts, see reward/importers_rubricsets.py.
medhallu / medsafetybench: outside safety sets as labelled veto records, see reward/importers_safety.py.
"""
from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any, Callable

from promedical.errors import UserError
from promedical.reward.rubric import Criterion, LabelledResponse, Message, RubricRecord, Tier


def _axis(tags: list[str]) -> str | None:
    for t in tags:
        if t.startswith("axis:"):
            return t.split(":", 1)[1]
    return None


def healthbench_record(obj: dict[str, Any], where: str) -> RubricRecord:
    try:
        pid = obj["prompt_id"]
        messages = tuple(Message(role=m["role"], content=m["content"]) for m in obj["prompt"])
        criteria = []
        for i, item in enumerate(obj["rubrics"]):
            points, tags = item["points"], list(item.get("tags", []))
            axis = _axis(tags)
            if points < 0:
                tier, weight = Tier.VETO, 0.0
            elif axis == "communication_quality":
                tier, weight = Tier.BONUS, 0.0
            else:
                tier, weight = Tier.PROFICIENCY, float(points)
            criteria.append(Criterion(id=f"c{i}", text=item["criterion"], tier=tier, weight=weight,
                                      axis=axis, tags=(f"points:{points:g}", *tags)))
    except (KeyError, TypeError) as exc:
        raise UserError(f"{where}: not a HealthBench example (missing or wrong field {exc}); "
                        f"expected prompt_id, prompt, rubrics") from None
    responses = []
    ideal = (obj.get("ideal_completions_data") or {}).get("ideal_completion")
    if isinstance(ideal, str) and ideal.strip():
        responses.append(LabelledResponse(text=ideal))
    return RubricRecord(prompt_id=pid, messages=messages, criteria=tuple(criteria),
                        responses=tuple(responses), source="healthbench",
                        tags=tuple(obj.get("example_tags", [])))


def _statements(value: Any) -> list[str]:
    """K-QA statement lists (a list, or its Python repr); blank statements carry nothing and are dropped."""
    if isinstance(value, str) and value.strip():
        value = ast.literal_eval(value)
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return []


def kqa_record(obj: dict[str, Any], where: str, index: int) -> RubricRecord:
    try:
        question = obj["Question"]
        must, nice = _statements(obj.get("Must_have")), _statements(obj.get("Nice_to_have"))
    except (KeyError, ValueError, SyntaxError) as exc:
        raise UserError(f"{where}: not a K-QA record ({exc}); expected Question, Must_have, Nice_to_have") from None
    criteria = [Criterion(id=f"m{i}", text=s, tier=Tier.PROFICIENCY, weight=1.0, tags=("kqa:must_have",))
                for i, s in enumerate(must)]
    criteria += [Criterion(id=f"n{i}", text=s, tier=Tier.BONUS, tags=("kqa:nice_to_have",))
                 for i, s in enumerate(nice)]
    answer = obj.get("Free_form_answer")
    responses = (LabelledResponse(text=answer, labels={c.id: True for c in criteria if c.tier is Tier.PROFICIENCY}),) \
        if isinstance(answer, str) and answer.strip() else ()
    return RubricRecord(prompt_id=f"kqa-{index:04d}", messages=(Message("user", question),),
                        criteria=tuple(criteria), responses=responses, source="kqa")


def import_healthbench(paths: list[Path]) -> list[RubricRecord]:
    out = []
    for path in paths:
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UserError(f"{path}: cannot read as JSON ({exc})") from None
        out.append(healthbench_record(obj, str(path)))
    return out


def import_kqa(paths: list[Path]) -> list[RubricRecord]:
    out = []
    for path in paths:
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise UserError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from None
                out.append(kqa_record(obj, f"{path}:{lineno}", len(out)))
    return out


def _flat(kind: str) -> Callable[[list[Path]], list[RubricRecord]]:
    def run(paths: list[Path]) -> list[RubricRecord]:
        from promedical.reward.importers_flat import import_flat
        return import_flat(paths, kind)
    return run


def _rubricset(name: str, module: str = "importers_rubricsets") -> Callable[[list[Path]], list[RubricRecord]]:
    def run(paths: list[Path]) -> list[RubricRecord]:
        import importlib
        return getattr(importlib.import_module(f"promedical.reward.{module}"), f"import_{name}")(paths)
    return run


IMPORTERS: dict[str, Callable[[list[Path]], list[RubricRecord]]] = {
    "healthbench": import_healthbench, "kqa": import_kqa,
    "flat-points": _flat("points"), "flat-weighted": _flat("weighted"),
    "rar": _rubricset("rar"), "rubrichub": _rubricset("rubrichub"),
    "medhallu": _rubricset("medhallu", "importers_safety"),
    "medsafetybench": _rubricset("medsafetybench", "importers_safety")}


def expand_inputs(path: Path) -> list[Path]:
    """A file, or every .json/.jsonl/.parquet/.csv file of a directory in name order."""
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in (".json", ".jsonl", ".parquet", ".csv"))
    if not path.exists():
        raise UserError(f"{path}: no such file or directory")
    return [path]
