"""Export: accepted rubrics (with the deciding reviewer's edits) and adjudications as pairwise
preferences, both as canonical records that `data validate`, `train-rm` and `eval-rm` read."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from promedical.reward.rubric import RubricRecord
from promedical.reward.rubric_io import record_from_dict, save_records
from promedical.workbench.review import accepted_record


def accepted_records(conn: sqlite3.Connection) -> list[RubricRecord]:
    """Every item whose first finished review accepted it, as that reviewer left it, in drafting order."""
    rows = conn.execute("SELECT i.prompt_id, i.messages, r.criteria FROM items i JOIN reviews r ON "
                        "r.item_id = i.id AND r.reviewer = i.decided_by WHERE i.decision = 'accept' ORDER BY i.id")
    return [accepted_record(r["prompt_id"], json.loads(r["messages"]), json.loads(r["criteria"])) for r in rows]


def _adjudicated(conn: sqlite3.Connection, pair: sqlite3.Row, reviewer: str) -> RubricRecord:
    responses = json.loads(pair["responses"])
    votes = conn.execute("SELECT criterion_id, choice FROM votes WHERE pair_id = ? AND reviewer = ?",
                         (pair["id"], reviewer)).fetchall()
    order = [c["id"] for c in json.loads(pair["criteria"])]
    prefs = [{"criterion_id": v["criterion_id"], "winner": 0 if v["choice"] == "a" else 1,
              "loser": 1 if v["choice"] == "a" else 0}
             for v in sorted(votes, key=lambda v: order.index(v["criterion_id"])) if v["choice"] != "tie"]
    return record_from_dict({
        "prompt_id": pair["prompt_id"], "messages": json.loads(pair["messages"]),
        "criteria": json.loads(pair["criteria"]), "responses": [{"text": r["text"]} for r in responses],
        "pairs": prefs, "source": "workbench-adjudication",
        "tags": [f"response{i}:{r['source']}" for i, r in enumerate(responses)] + [f"adjudicator:{reviewer}"]})


def adjudicated_records(conn: sqlite3.Connection) -> list[RubricRecord]:
    """One record per finished pair: the first finished adjudicator's per-criterion preferences (ties left
    out), responses in stored order with their sources revealed in tags `response0:SOURCE`."""
    out = []
    for pair in conn.execute("SELECT * FROM pairs ORDER BY id").fetchall():
        first = conn.execute("SELECT reviewer FROM pair_views WHERE pair_id = ? AND finished IS NOT NULL "
                             "ORDER BY finished LIMIT 1", (pair["id"],)).fetchone()
        if first is not None:
            out.append(_adjudicated(conn, pair, first["reviewer"]))
    return out


def export(conn: sqlite3.Connection, out: str | Path, pairs_out: str | Path | None = None) -> tuple[int, int]:
    """Write the accepted rubrics (and the adjudications, when pairs_out is given); returns both counts."""
    rubrics = accepted_records(conn)
    save_records(rubrics, out)
    pairs = adjudicated_records(conn) if pairs_out else []
    if pairs_out:
        save_records(pairs, pairs_out)
    return len(rubrics), len(pairs)
