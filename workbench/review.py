"""Reviewing drafted rubrics: each reviewer's queue, criterion actions, the rubric verdict.

Concurrency rule. Every reviewer works on their own copy of an item, so two reviewers never overwrite each
other and their verdicts stay independent (that is what agreement statistics need). The first reviewer
to finish an item decides it: their copy is what export writes; a later review of the same item is kept
for agreement only. Each write names the version of the copy it was made on; a write on an older version
(the same reviewer in a second tab, a retried request) is refused with 409 and the current copy.
"""
from __future__ import annotations

import json
import math
import sqlite3
import time
from typing import Any

from promedical.reward.rubric import RubricRecord
from promedical.reward.rubric_rows import TIERS, RecordProblems, record_from_dict
from promedical.workbench.store import log, transaction

STATUSES = ("pending", "accept", "reject")
EDITABLE = ("text", "tier", "weight")


class ReviewError(Exception):
    """A refused action; `status` is the HTTP status the web app answers with."""

    def __init__(self, status: int, message: str, current: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.current = status, current


def _working_copy(draft: list[Any]) -> list[dict[str, Any]]:
    """The draft's criteria as editable rows; a malformed drafted criterion still becomes a row to fix."""
    out, seen = [], set()
    for i, c in enumerate(draft):
        row = {k: c[k] for k in ("axis", "tags", "pattern") if k in c}
        cid = str(c.get("id") or f"c{i}")
        cid = cid if cid not in seen else f"{cid}_{i}"       # a repeated drafted id must stay editable
        seen.add(cid)
        row.update(id=cid, text=str(c.get("text") or ""),
                   tier=str(c.get("tier") or "proficiency"), weight=c.get("weight", 0.0), status="pending")
        out.append(row)
    return out


# The next free item: not opened by this reviewer, opened by fewer reviewers than it wants; by round.
NEXT_FREE = ("SELECT i.* FROM items i WHERE NOT EXISTS (SELECT 1 FROM reviews r WHERE r.item_id = i.id AND "
             "r.reviewer = ?) AND (SELECT COUNT(*) FROM reviews r WHERE r.item_id = i.id) < i.reviews_wanted "
             "ORDER BY i.round, i.id LIMIT 1")


def _open_item(conn: sqlite3.Connection, reviewer: str) -> sqlite3.Row | None:
    """The item this reviewer is on: one already opened and unfinished, else the next free one."""
    row = conn.execute("SELECT i.* FROM items i JOIN reviews r ON r.item_id = i.id WHERE r.reviewer = ? AND "
                       "r.finished IS NULL ORDER BY i.round, i.id LIMIT 1", (reviewer,)).fetchone()
    return row if row is not None else conn.execute(NEXT_FREE, (reviewer,)).fetchone()


def _ensure_review(conn: sqlite3.Connection, item: sqlite3.Row, reviewer: str) -> sqlite3.Row:
    review = conn.execute("SELECT * FROM reviews WHERE item_id = ? AND reviewer = ?", (item["id"], reviewer)).fetchone()
    if review is None:
        with transaction(conn):
            conn.execute("INSERT OR IGNORE INTO reviews (item_id, reviewer, version, criteria, started) "
                         "VALUES (?, ?, 0, ?, ?)",
                         (item["id"], reviewer, json.dumps(_working_copy(json.loads(item["draft"]))), time.time()))
            log(conn, reviewer, "open", item["id"], {})
        review = conn.execute("SELECT * FROM reviews WHERE item_id = ? AND reviewer = ?",
                              (item["id"], reviewer)).fetchone()
    return review


def _progress(conn: sqlite3.Connection, reviewer: str, round_no: int) -> dict[str, int]:
    total = conn.execute("SELECT COUNT(*) FROM items WHERE round = ?", (round_no,)).fetchone()[0]
    mine = conn.execute("SELECT COUNT(*) FROM reviews r JOIN items i ON i.id = r.item_id WHERE i.round = ? AND "
                        "r.reviewer = ? AND r.finished IS NOT NULL", (round_no, reviewer)).fetchone()[0]
    return {"round": round_no, "items": total, "reviewed": mine}


def view(item: sqlite3.Row, review: sqlite3.Row, conn: sqlite3.Connection, reviewer: str) -> dict[str, Any]:
    """What the review page shows: the instruction, the reviewer's copy by tier, draft problems, progress."""
    return {"item_id": item["id"], "prompt_id": item["prompt_id"], "messages": json.loads(item["messages"]),
            "outcome": item["outcome"], "problems": json.loads(item["problems"]),
            "raw": item["raw"] if item["outcome"] != "ok" else "", "version": review["version"],
            "criteria": json.loads(review["criteria"]), "progress": _progress(conn, reviewer, item["round"])}


def current(conn: sqlite3.Connection, reviewer: str) -> dict[str, Any]:
    """The reviewer's current item (opening it starts its clock), or {"item_id": None} when all are done."""
    item = _open_item(conn, reviewer)
    if item is None:
        done = conn.execute("SELECT COUNT(*) FROM reviews WHERE reviewer = ? AND finished IS NOT NULL",
                            (reviewer,)).fetchone()[0]
        return {"item_id": None, "reviewed": done}
    return view(item, _ensure_review(conn, item, reviewer), conn, reviewer)


def _check_change(key: str, value: Any) -> Any:
    if key == "text" and (not isinstance(value, str) or not value.strip()):
        raise ReviewError(422, "text: give a non-empty criterion text")
    if key == "tier" and value not in TIERS:
        raise ReviewError(422, f"tier: {value!r} is not one of {TIERS}")
    if key == "weight":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ReviewError(422, f"weight: {value!r} must be a finite number >= 0")
        return float(value)
    if key == "status" and value not in STATUSES:
        raise ReviewError(422, f"status: {value!r} is not one of {STATUSES}")
    return value


def _load(conn: sqlite3.Connection, reviewer: str, item_id: int, version: int) -> tuple[sqlite3.Row, sqlite3.Row]:
    item = conn.execute("SELECT * FROM items WHERE id = ?", (item_id,)).fetchone()
    if item is None:
        raise ReviewError(404, f"no item {item_id}")
    review = _ensure_review(conn, item, reviewer)
    if review["finished"] is not None:
        raise ReviewError(409, f"item {item_id} is already finished by {reviewer}")
    if review["version"] != version:
        raise ReviewError(409, f"item {item_id} changed since version {version} (now {review['version']}); "
                               "reloaded", view(item, review, conn, reviewer))
    return item, review


def _write(conn: sqlite3.Connection, reviewer: str, item: sqlite3.Row, version: int, criteria: list[dict],
           kind: str, detail: dict, verdict: str | None = None) -> None:
    """Compare-and-set on the version: only one of two racing writes lands; the other gets 409."""
    with transaction(conn):
        cur = conn.execute(
            "UPDATE reviews SET criteria = ?, version = version + 1, verdict = ?, finished = ? "
            "WHERE item_id = ? AND reviewer = ? AND version = ? AND finished IS NULL",
            (json.dumps(criteria), verdict, time.time() if verdict else None, item["id"], reviewer, version))
        if cur.rowcount != 1:
            raise ReviewError(409, f"item {item['id']} changed while saving; reload it")
        if verdict:
            conn.execute("UPDATE items SET decided_by = ?, decision = ? WHERE id = ? AND decided_by IS NULL",
                         (reviewer, verdict, item["id"]))
        log(conn, reviewer, kind, item["id"], detail)


def change_criterion(conn: sqlite3.Connection, reviewer: str, item_id: int, version: int, criterion_id: str,
                     changes: dict[str, Any]) -> dict[str, Any]:
    """Accept, reject or edit (text, tier, weight) one criterion of the reviewer's copy."""
    unknown = sorted(set(changes) - set(EDITABLE) - {"status"})
    if unknown or not changes:
        raise ReviewError(422, f"changes: give some of {EDITABLE + ('status',)}; got {sorted(changes)}")
    checked = {k: _check_change(k, v) for k, v in changes.items()}
    item, review = _load(conn, reviewer, item_id, version)
    criteria = json.loads(review["criteria"])
    row = next((c for c in criteria if c["id"] == criterion_id), None)
    if row is None:
        raise ReviewError(404, f"item {item_id} has no criterion {criterion_id!r}")
    row.update(checked)
    _write(conn, reviewer, item, version, criteria, "criterion", {"id": criterion_id, **checked})
    return current_of(conn, reviewer, item_id)


def current_of(conn: sqlite3.Connection, reviewer: str, item_id: int) -> dict[str, Any]:
    item = conn.execute("SELECT * FROM items WHERE id = ?", (item_id,)).fetchone()
    return view(item, _ensure_review(conn, item, reviewer), conn, reviewer)


def accepted_record(prompt_id: str, messages: list[dict], criteria: list[dict]) -> RubricRecord:
    """The canonical record of a reviewer's accepted copy: its accepted criteria, through the validator."""
    kept = [{k: v for k, v in c.items() if k != "status"} for c in criteria if c["status"] == "accept"]
    return record_from_dict({"prompt_id": prompt_id, "messages": messages, "criteria": kept,
                             "source": "workbench"})


def finish(conn: sqlite3.Connection, reviewer: str, item_id: int, version: int, verdict: str) -> dict[str, Any]:
    """Accept (still-pending criteria count as accepted) or reject the rubric; then the next item."""
    if verdict not in ("accept", "reject"):
        raise ReviewError(422, f"verdict: {verdict!r} is not accept or reject")
    item, review = _load(conn, reviewer, item_id, version)
    criteria = json.loads(review["criteria"])
    if verdict == "accept":
        for c in criteria:
            c["status"] = "accept" if c["status"] == "pending" else c["status"]
        try:
            accepted_record(item["prompt_id"], json.loads(item["messages"]), criteria)
        except RecordProblems as exc:
            raise ReviewError(422, f"cannot accept: {exc.problems[0]}; fix it or reject the rubric") from None
    _write(conn, reviewer, item, version, criteria, "verdict", {"verdict": verdict}, verdict=verdict)
    return current(conn, reviewer)
