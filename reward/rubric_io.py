"""Read and write rubric records as JSONL (one record per line) or Parquet, with strict validation.

Every problem is reported as `FILE:LINE: field: what is wrong; fix`, and reading stops nothing
half-way: a file either loads whole or raises UserError listing its first problems.
"""
from __future__ import annotations

import codecs
import json
from pathlib import Path
from typing import Iterable

from promedical.errors import UserError
from promedical.reward.rubric import RubricRecord
from promedical.reward.rubric_rows import (RecordProblems, collect_records,  # noqa: F401 (re-exported)
                                           record_from_dict, record_to_dict)


def _json_lines(path: Path, raw: bytes, problems: list[str], max_problems: int):
    """(where, line number, object) for each line that decodes; decoding problems go to `problems`."""
    lines = raw.split(b"\n")
    for lineno, line in enumerate(lines, start=1):
        if len(problems) >= max_problems:
            return
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(f"{where}: invalid UTF-8 at byte {exc.start}; re-encode the file as UTF-8")
            continue
        try:
            yield where, lineno, json.loads(text)
        except json.JSONDecodeError as exc:
            hint = "truncated line?" if lineno == len(lines) or exc.pos >= len(text) - 1 else "fix the JSON"
            problems.append(f"{where}: invalid JSON ({exc.msg} at column {exc.colno}); {hint}")


def read_jsonl(path: str | Path, max_problems: int = 50) -> tuple[list[RubricRecord], list[str]]:
    """Records and every problem as 'FILE:LINE: field: message'."""
    path = Path(path)
    problems: list[str] = []
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return [], [f"{path}: cannot read ({exc.strerror}); check the path"]
    if raw.startswith(codecs.BOM_UTF8):      # spreadsheet tools save UTF-8 with a byte-order mark
        raw = raw[len(codecs.BOM_UTF8):]
    records = collect_records(_json_lines(path, raw, problems, max_problems), "line", problems)
    if not records and not problems:
        problems.append(f"{path}: no records; a rubric file holds one JSON object per line")
    return records, problems


def load_records(path: str | Path) -> list[RubricRecord]:
    """All records of a valid JSONL or Parquet rubric file; UserError naming the first problem otherwise."""
    path = Path(path)
    if path.suffix == ".parquet":
        from promedical.reward.rubric_parquet import read_parquet
        records, problems = read_parquet(path)
    else:
        records, problems = read_jsonl(path)
    if problems:
        more = f" (and {len(problems) - 1} more; run: promedical data validate {path})" if len(problems) > 1 else ""
        raise UserError(problems[0] + more)
    return records


def dumps_jsonl(records: Iterable[RubricRecord]) -> str:
    return "".join(json.dumps(record_to_dict(r), ensure_ascii=False) + "\n" for r in records)


def read_records(path: str | Path, max_problems: int = 50) -> tuple[list[RubricRecord], list[str]]:
    """Records and problems of a JSONL or Parquet rubric file (chosen by the .parquet suffix)."""
    path = Path(path)
    if path.suffix == ".parquet":
        from promedical.reward.rubric_parquet import read_parquet
        records, problems = read_parquet(path)
        return records, problems[:max_problems]
    return read_jsonl(path, max_problems=max_problems)


def check_records(records: Iterable[RubricRecord]) -> list[str]:
    """Problems of in-memory records (e.g. fresh from an importer), checked as the file reader would."""
    problems = []
    for rec in records:
        try:
            record_from_dict(record_to_dict(rec))
        except RecordProblems as exc:
            problems += [f"record {rec.prompt_id!r}: {p}" for p in exc.problems]
    return problems


def save_records(records: list[RubricRecord], path: str | Path) -> Path:
    """Write JSONL or Parquet (by suffix) through a temporary file, so nothing is half-written."""
    path = Path(path)
    if path.suffix == ".parquet":
        from promedical.reward.rubric_parquet import write_parquet
        return write_parquet(records, path)
    if path.suffix != ".jsonl":
        raise UserError(f"{path}: unknown output format; name it *.jsonl or *.parquet")
    from promedical.storage.atomic import write_text_atomic
    return write_text_atomic(path, dumps_jsonl(records))
