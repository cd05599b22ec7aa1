"""Rubric records as Parquet: one row per record, nested columns mirroring the JSONL fields.

Per-response labels are stored as a list of {criterion_id, met} (Parquet has no free-keyed maps of
mixed content); reading rebuilds the JSONL object and validates it exactly as a JSONL line, so both
formats accept and reject the same records. Problems are reported as `FILE:row N: field: ...`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from promedical.storage.atomic import write_atomic
from promedical.reward.rubric import RubricRecord
from promedical.reward.rubric_rows import collect_records, record_to_dict

_MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
_CRITERION = pa.struct([("id", pa.string()), ("text", pa.string()), ("tier", pa.string()),
                        ("weight", pa.float64()), ("axis", pa.string()), ("tags", pa.list_(pa.string())),
                        ("pattern", pa.string())])
_LABEL = pa.struct([("criterion_id", pa.string()), ("met", pa.bool_())])
_RESPONSE = pa.struct([("text", pa.string()), ("labels", pa.list_(_LABEL))])
_PAIR = pa.struct([("criterion_id", pa.string()), ("winner", pa.int64()), ("loser", pa.int64())])

RUBRIC_PARQUET_SCHEMA = pa.schema([
    ("prompt_id", pa.string()),
    ("messages", pa.list_(_MESSAGE)),
    ("criteria", pa.list_(_CRITERION)),
    ("responses", pa.list_(_RESPONSE)),
    ("pairs", pa.list_(_PAIR)),
    ("source", pa.string()),          # null when absent
    ("tags", pa.list_(pa.string())),
])

_OPTIONAL_CRITERION_KEYS = ("axis", "pattern")


def _row(rec: RubricRecord) -> dict[str, Any]:
    obj = record_to_dict(rec)
    for c in obj["criteria"]:
        c.setdefault("tags", [])
        for key in _OPTIONAL_CRITERION_KEYS:
            c.setdefault(key, None)
    obj["responses"] = [{"text": r["text"], "labels": [{"criterion_id": k, "met": v} for k, v in r["labels"].items()]}
                        for r in obj.get("responses", [])]
    obj.setdefault("pairs", [])
    obj.setdefault("source", None)
    obj.setdefault("tags", [])
    return obj


def _unrow(row: dict[str, Any]) -> dict[str, Any]:
    """The JSONL-shaped object of one Parquet row (nulls of optional fields dropped)."""
    obj = {k: v for k, v in row.items() if v is not None}
    criteria = []
    for c in obj.get("criteria") or []:
        criteria.append({k: v for k, v in c.items() if v is not None} if isinstance(c, dict) else c)
    obj["criteria"] = criteria
    responses = []
    for r in obj.get("responses") or []:
        labels = {item["criterion_id"]: item["met"] for item in r.get("labels") or []}
        responses.append({"text": r.get("text"), "labels": labels})
    obj["responses"] = responses
    return obj


def write_parquet(records: Iterable[RubricRecord], path: str | Path) -> Path:
    table = pa.Table.from_pylist([_row(r) for r in records], schema=RUBRIC_PARQUET_SCHEMA)
    return write_atomic(path, lambda tmp: pq.write_table(table, tmp))


def read_parquet(path: str | Path) -> tuple[list[RubricRecord], list[str]]:
    """Records and every problem as 'FILE:row N: field: message' (rows counted from 1)."""
    path = Path(path)
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        return [], [f"{path}: not a readable Parquet file ({exc}); re-export it with promedical data import"]
    missing = [f.name for f in RUBRIC_PARQUET_SCHEMA if f.name not in table.column_names]
    if missing:
        return [], [f"{path}: columns {missing} missing; expected the rubric Parquet schema"]
    problems: list[str] = []
    rows = ((f"{path}:row {n}", n, _unrow(row)) for n, row in enumerate(table.to_pylist(), start=1))
    records = collect_records(rows, "row", problems)
    if not records and not problems:
        problems.append(f"{path}: no records")
    return records, problems
