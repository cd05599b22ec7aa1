"""Double-blind adjudication: two responses to one instruction, shown in random order without their
source; the reviewer picks the better one (or a tie) per criterion. Sources appear only in the export.

Pairs file, one JSON object per line: a canonical rubric record (prompt_id, messages, criteria) whose
"responses" are exactly two {"text": ..., "source": ...} objects (source: the model or person that wrote it).
"""
from __future__ import annotations

import json
import random
import sqlite3
import time
from pathlib import Path
from typing import Any

from promedical.errors import UserError
from promedical.reward.rubric_io import RecordProblems, record_from_dict, record_to_dict
from promedical.workbench.review import ReviewError
from promedical.workbench.store import log, transaction

SHOWN = ("first", "tie", "second")


def _pair_row(obj: Any, where: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise UserError(f"{where}: expected a JSON object")
    responses = obj.get("responses")
    ok = isinstance(responses, list) and len(responses) == 2 and all(
        isinstance(r, dict) and set(r) == {"text", "source"} and all(isinstance(v, str) and v.strip()
                                                                   for v in r.values()) for r in responses)
    if not ok:
        raise UserError(f"{where}: responses: give exactly two {{\"text\": ..., \"source\": ...}} objects")
    try:
        rec = record_from_dict({k: v for k, v in obj.items() if k != "responses"})
    except RecordProblems as exc:
        raise UserError(f"{where}: {exc.problems[0]}") from None
    canonical = record_to_dict(rec)
    return {"prompt_id": rec.prompt_id, "messages": json.dumps(canonical["messages"]),
            "criteria": json.dumps(canonical["criteria"]), "responses": json.dumps(responses)}


def load_pairs(conn: sqlite3.Connection, path: str | Path, reviews_wanted: int = 1) -> int:
    """Add every pair of the file (all or none); returns how many were new."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read ({exc}); give a UTF-8 JSONL file") from None
    rows = []
    for lineno, line in enumerate(lines, start=1):
        if line.strip():
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}:{lineno}: invalid JSON ({exc.msg} at column {exc.colno}); fix the JSON") from None
            rows.append(dict(_pair_row(obj, f"{path}:{lineno}"), reviews_wanted=reviews_wanted))
    with transaction(conn):
        before = conn.execute("SELECT COUNT(*) FROM pairs").fetchone()[0]
        conn.executemany("INSERT OR IGNORE INTO pairs (prompt_id, messages, criteria, responses, reviews_wanted) "
                         "VALUES (:prompt_id, :messages, :criteria, :responses, :reviews_wanted)", rows)
        return conn.execute("SELECT COUNT(*) FROM pairs").fetchone()[0] - before


def _open_pair(conn: sqlite3.Connection, reviewer: str) -> sqlite3.Row | None:
    row = conn.execute("SELECT p.* FROM pairs p JOIN pair_views v ON v.pair_id = p.id WHERE v.reviewer = ? "
                       "AND v.finished IS NULL ORDER BY p.id LIMIT 1", (reviewer,)).fetchone()
    if row is not None:
        return row
    return conn.execute(
        "SELECT p.* FROM pairs p WHERE NOT EXISTS (SELECT 1 FROM pair_views v WHERE v.pair_id = p.id AND "
        "v.reviewer = ?) AND (SELECT COUNT(*) FROM pair_views v WHERE v.pair_id = p.id) < p.reviews_wanted "
        "ORDER BY p.id LIMIT 1", (reviewer,)).fetchone()


def _view_row(conn: sqlite3.Connection, pair_id: int, reviewer: str) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM pair_views WHERE pair_id = ? AND reviewer = ?", (pair_id, reviewer)).fetchone()
    if row is None:
        with transaction(conn):
            conn.execute("INSERT OR IGNORE INTO pair_views (pair_id, reviewer, swapped, started) VALUES (?, ?, ?, ?)",
                         (pair_id, reviewer, random.SystemRandom().randint(0, 1), time.time()))
            log(conn, reviewer, "open_pair", pair_id, {})
        row = conn.execute("SELECT * FROM pair_views WHERE pair_id = ? AND reviewer = ?", (pair_id, reviewer)).fetchone()
    return row


def _to_stored(choice: str, swapped: int) -> str:
    stored = {"first": "a", "tie": "tie", "second": "b"}[choice]
    return {"a": "b", "b": "a", "tie": "tie"}[stored] if swapped else stored


def _to_shown(stored: str, swapped: int) -> str:
    shown = {"a": "first", "tie": "tie", "b": "second"}[stored]
    return {"first": "second", "second": "first", "tie": "tie"}[shown] if swapped else shown


def pair_view(conn: sqlite3.Connection, pair: sqlite3.Row, reviewer: str) -> dict[str, Any]:
    """What the adjudication page shows: no source, responses in this reviewer's random order."""
    seen = _view_row(conn, pair["id"], reviewer)
    texts = [r["text"] for r in json.loads(pair["responses"])]
    if seen["swapped"]:
        texts.reverse()
    votes = {r["criterion_id"]: _to_shown(r["choice"], seen["swapped"]) for r in conn.execute(
        "SELECT criterion_id, choice FROM votes WHERE pair_id = ? AND reviewer = ?", (pair["id"], reviewer))}
    left = conn.execute("SELECT COUNT(*) FROM pairs p WHERE NOT EXISTS (SELECT 1 FROM pair_views v WHERE "
                        "v.pair_id = p.id AND v.reviewer = ? AND v.finished IS NOT NULL)", (reviewer,)).fetchone()[0]
    return {"pair_id": pair["id"], "messages": json.loads(pair["messages"]), "criteria": json.loads(pair["criteria"]),
            "responses": texts, "votes": votes, "left": left}


def current_pair(conn: sqlite3.Connection, reviewer: str) -> dict[str, Any]:
    pair = _open_pair(conn, reviewer)
    return {"pair_id": None} if pair is None else pair_view(conn, pair, reviewer)


def _pair(conn: sqlite3.Connection, pair_id: int, reviewer: str) -> tuple[sqlite3.Row, sqlite3.Row]:
    pair = conn.execute("SELECT * FROM pairs WHERE id = ?", (pair_id,)).fetchone()
    if pair is None:
        raise ReviewError(404, f"no pair {pair_id}")
    seen = _view_row(conn, pair_id, reviewer)
    if seen["finished"] is not None:
        raise ReviewError(409, f"pair {pair_id} is already finished by {reviewer}")
    return pair, seen


def vote(conn: sqlite3.Connection, reviewer: str, pair_id: int, criterion_id: str, choice: str) -> dict[str, Any]:
    """Record (or change) the reviewer's choice for one criterion: first, tie or second as displayed."""
    if choice not in SHOWN:
        raise ReviewError(422, f"choice: {choice!r} is not one of {SHOWN}")
    pair, seen = _pair(conn, pair_id, reviewer)
    if criterion_id not in {c["id"] for c in json.loads(pair["criteria"])}:
        raise ReviewError(404, f"pair {pair_id} has no criterion {criterion_id!r}")
    stored = _to_stored(choice, seen["swapped"])
    with transaction(conn):
        conn.execute("INSERT OR REPLACE INTO votes (pair_id, reviewer, criterion_id, choice) VALUES (?, ?, ?, ?)",
                     (pair_id, reviewer, criterion_id, stored))
        log(conn, reviewer, "vote", pair_id, {"id": criterion_id, "choice": stored})
    return pair_view(conn, pair, reviewer)


def finish_pair(conn: sqlite3.Connection, reviewer: str, pair_id: int) -> dict[str, Any]:
    pair, _ = _pair(conn, pair_id, reviewer)
    missing = [c["id"] for c in json.loads(pair["criteria"])
               if c["id"] not in pair_view(conn, pair, reviewer)["votes"]]
    if missing:
        raise ReviewError(422, f"no choice yet for criteria {missing}; pick first, tie or second for each")
    with transaction(conn):
        conn.execute("UPDATE pair_views SET finished = ? WHERE pair_id = ? AND reviewer = ? AND finished IS NULL",
                     (time.time(), pair_id, reviewer))
        log(conn, reviewer, "finish_pair", pair_id, {})
    return current_pair(conn, reviewer)
