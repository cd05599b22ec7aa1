"""The workbench's SQLite store: drafts, reviewers, per-reviewer reviews, adjudications, an action log.

Every write is its own committed transaction (BEGIN IMMEDIATE ... COMMIT), so stopping the server or
closing the browser loses nothing; WAL lets the CLI read while the server writes.
"""
from __future__ import annotations

import json
import secrets
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from promedical.errors import UserError

SCHEMA = """
CREATE TABLE IF NOT EXISTS reviewers (
  name     TEXT PRIMARY KEY,
  token    TEXT UNIQUE NOT NULL            -- secret in the reviewer's URL and X-Reviewer-Token header
);
CREATE TABLE IF NOT EXISTS items (         -- one drafted rubric per instruction
  id             INTEGER PRIMARY KEY,
  prompt_id      TEXT UNIQUE NOT NULL,
  messages       TEXT NOT NULL,            -- JSON [{role, content}]
  round          INTEGER NOT NULL,         -- drafting round; the pool grows between rounds
  outcome        TEXT NOT NULL,            -- drafting outcome (drafting.OUTCOMES)
  draft          TEXT NOT NULL,            -- JSON criteria as drafted, possibly invalid, possibly []
  problems       TEXT NOT NULL,            -- JSON [str] parse/validator problems of the draft
  raw            TEXT NOT NULL,            -- the model's last reply
  attempts       INTEGER NOT NULL,
  reviews_wanted INTEGER NOT NULL,         -- 2 for items kept for inter-reviewer agreement
  decided_by     TEXT,                     -- first reviewer to finish: their copy is exported
  decision       TEXT                      -- accept | reject
);
CREATE TABLE IF NOT EXISTS reviews (       -- each reviewer's own working copy of an item
  item_id  INTEGER NOT NULL REFERENCES items(id),
  reviewer TEXT NOT NULL REFERENCES reviewers(name),
  version  INTEGER NOT NULL,               -- +1 per write; a write naming an older version gets 409
  criteria TEXT NOT NULL,                  -- JSON [{id, text, tier, weight, ..., status}]
  verdict  TEXT,                           -- accept | reject once finished
  started  REAL NOT NULL,
  finished REAL,
  PRIMARY KEY (item_id, reviewer)
);
CREATE TABLE IF NOT EXISTS pairs (         -- adjudication: two responses to one instruction
  id        INTEGER PRIMARY KEY,
  prompt_id TEXT UNIQUE NOT NULL,
  messages  TEXT NOT NULL,
  criteria  TEXT NOT NULL,                 -- JSON canonical criteria
  responses TEXT NOT NULL,                 -- JSON [{text, source}, {text, source}]; source never served
  reviews_wanted INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS pair_views (
  pair_id  INTEGER NOT NULL REFERENCES pairs(id),
  reviewer TEXT NOT NULL REFERENCES reviewers(name),
  swapped  INTEGER NOT NULL,               -- 1: response b is shown first (drawn at random, kept)
  started  REAL NOT NULL,
  finished REAL,
  PRIMARY KEY (pair_id, reviewer)
);
CREATE TABLE IF NOT EXISTS votes (
  pair_id      INTEGER NOT NULL,
  reviewer     TEXT NOT NULL,
  criterion_id TEXT NOT NULL,
  choice       TEXT NOT NULL,              -- a | tie | b, in stored (not displayed) order
  PRIMARY KEY (pair_id, reviewer, criterion_id)
);
CREATE TABLE IF NOT EXISTS actions (       -- append-only log of every reviewer action
  id       INTEGER PRIMARY KEY,
  at       REAL NOT NULL,
  reviewer TEXT NOT NULL,
  kind     TEXT NOT NULL,
  target   INTEGER NOT NULL,
  detail   TEXT NOT NULL
);
"""


def connect(path: str | Path, *, create: bool = False) -> sqlite3.Connection:
    """A connection with the schema in place; UserError when the file is missing and create is False."""
    path = Path(path)
    if not create and not path.exists():
        raise UserError(f"{path}: no such workbench database; create it with: promedical rubrics draft IN {path}")
    try:
        conn = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(SCHEMA)
    except sqlite3.DatabaseError as exc:
        raise UserError(f"{path}: not a workbench database ({exc}); give the file made by rubrics draft") from None
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One committed write; readers never see it half done."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def log(conn: sqlite3.Connection, reviewer: str, kind: str, target: int, detail: dict[str, Any]) -> None:
    conn.execute("INSERT INTO actions (at, reviewer, kind, target, detail) VALUES (?, ?, ?, ?, ?)",
                 (time.time(), reviewer, kind, target, json.dumps(detail)))


def add_reviewer(conn: sqlite3.Connection, name: str) -> str:
    """The reviewer's token (a new one for a new name, the existing one otherwise)."""
    if not name.strip():
        raise UserError("reviewer name is empty; give a name such as dr_lee")
    with transaction(conn):
        row = conn.execute("SELECT token FROM reviewers WHERE name = ?", (name,)).fetchone()
        if row:
            return str(row["token"])
        token = secrets.token_urlsafe(16)
        conn.execute("INSERT INTO reviewers (name, token) VALUES (?, ?)", (name, token))
        return token


def reviewer_for(conn: sqlite3.Connection, token: str | None) -> str | None:
    if not token:
        return None
    row = conn.execute("SELECT name FROM reviewers WHERE token = ?", (token,)).fetchone()
    return None if row is None else str(row["name"])


def reviewers(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    return [(r["name"], r["token"]) for r in conn.execute("SELECT name, token FROM reviewers ORDER BY name")]


def drafted_prompt_ids(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT prompt_id FROM items")}


def next_round(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COALESCE(MAX(round), 0) + 1 FROM items").fetchone()[0])


def add_items(conn: sqlite3.Connection, rows: list[dict[str, Any]]) -> None:
    """Insert drafted items (keys: the items columns except id/decided_by/decision), all or none."""
    with transaction(conn):
        conn.executemany(
            "INSERT INTO items (prompt_id, messages, round, outcome, draft, problems, raw, attempts, reviews_wanted)"
            " VALUES (:prompt_id, :messages, :round, :outcome, :draft, :problems, :raw, :attempts, :reviews_wanted)",
            rows)
