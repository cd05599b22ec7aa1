"""`rubrics stats`: the store's reviews turned into the pure statistics of workbench/stats.py."""
from __future__ import annotations

import json
import math
import sqlite3
from typing import Any

from promedical.workbench import stats

VERDICT_SCALE = ("reject", "edit", "accept")      # criterion verdicts, ordinal: accept = kept as drafted
CHOICE_SCALE = ("a", "tie", "b")                  # adjudication choices, ordinal


def _edited(criterion: dict, drafted: dict | None) -> bool:
    return drafted is None or any(criterion.get(k) != drafted.get(k) for k in ("text", "tier", "weight"))


def criterion_verdicts(draft: list[dict], criteria: list[dict]) -> dict[str, str]:
    """Criterion id -> reject | edit | accept for one finished review (undecided criteria left out)."""
    drafted = {str(c.get("id")): c for c in draft}
    out = {}
    for c in criteria:
        if c["status"] == "reject":
            out[c["id"]] = "reject"
        elif c["status"] == "accept":
            out[c["id"]] = "edit" if _edited(c, drafted.get(c["id"])) else "accept"
    return out


def _finished_reviews(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    return conn.execute("SELECT i.id, i.round, i.draft, r.reviewer, r.criteria, r.verdict, r.started, r.finished "
                        "FROM reviews r JOIN items i ON i.id = r.item_id WHERE r.finished IS NOT NULL "
                        "ORDER BY i.id, r.finished").fetchall()


def _agreement(pairs: list[tuple[str, str]], scale: tuple[str, ...]) -> dict[str, Any]:
    a = [scale.index(x) for x, _ in pairs]
    b = [scale.index(y) for _, y in pairs]
    return {"n": len(pairs), "kappa": stats.cohen_kappa(a, b, len(scale)),
            "weighted_kappa": stats.weighted_kappa(a, b, len(scale)) if len(scale) > 2 else math.nan}


def _review_agreement(reviews: list[sqlite3.Row]) -> tuple[dict, dict]:
    """Rubric and criterion agreement over items two reviewers finished (the first two to finish)."""
    by_item: dict[int, list[sqlite3.Row]] = {}
    for r in reviews:
        by_item.setdefault(r["id"], []).append(r)
    rubric, criterion = [], []
    for rows in by_item.values():
        if len(rows) < 2:
            continue
        x, y = rows[0], rows[1]
        rubric.append((x["verdict"], y["verdict"]))
        vx = criterion_verdicts(json.loads(x["draft"]), json.loads(x["criteria"]))
        vy = criterion_verdicts(json.loads(y["draft"]), json.loads(y["criteria"]))
        criterion += [(vx[c], vy[c]) for c in vx if c in vy]
    return _agreement(rubric, ("reject", "accept")), _agreement(criterion, VERDICT_SCALE)


def _adjudication_agreement(conn: sqlite3.Connection) -> dict[str, Any]:
    rows = conn.execute("SELECT v.pair_id, v.criterion_id, v.reviewer, v.choice FROM votes v JOIN pair_views w ON "
                        "w.pair_id = v.pair_id AND w.reviewer = v.reviewer WHERE w.finished IS NOT NULL "
                        "ORDER BY v.pair_id, v.criterion_id, w.finished").fetchall()
    by_key: dict[tuple, list[str]] = {}
    for r in rows:
        by_key.setdefault((r["pair_id"], r["criterion_id"]), []).append(r["choice"])
    return _agreement([(v[0], v[1]) for v in by_key.values() if len(v) >= 2], CHOICE_SCALE)


def collect(conn: sqlite3.Connection) -> dict[str, Any]:
    """Every figure `rubrics stats` shows, as plain data.

    Time per item runs from opening an item to finishing it; a page left open overnight skews the mean,
    so the median is shown first.
    """
    decided = conn.execute("SELECT round, decision FROM items WHERE decision IS NOT NULL ORDER BY round").fetchall()
    reviews = _finished_reviews(conn)
    tiers = []
    for r in reviews:
        drafted = {str(c.get("id")): c for c in json.loads(r["draft"])}
        verdicts = criterion_verdicts(json.loads(r["draft"]), json.loads(r["criteria"]))
        tiers += [(str(drafted.get(cid, {}).get("tier", "?")), v == "edit") for cid, v in verdicts.items()]
    pair_times = [r[0] for r in conn.execute("SELECT finished - started FROM pair_views WHERE finished IS NOT NULL")]
    outcomes = dict(conn.execute("SELECT outcome, COUNT(*) FROM items GROUP BY outcome").fetchall())
    rubric_agreement, criterion_agreement = _review_agreement(reviews)
    return {"drafts": outcomes,
            "pass_rate": stats.rate_by((r["round"], r["decision"] == "accept") for r in decided),
            "edit_rate": stats.rate_by(tiers),
            "rubric_agreement": rubric_agreement, "criterion_agreement": criterion_agreement,
            "adjudication_agreement": _adjudication_agreement(conn),
            "review_time": stats.time_summary([r["finished"] - r["started"] for r in reviews]),
            "adjudication_time": stats.time_summary(pair_times)}


def _num(x: float, fmt: str = ".3f") -> str:
    return "n/a" if math.isnan(x) else format(x, fmt)


def render(figures: dict[str, Any]) -> str:
    lines = ["drafts by outcome: " + (", ".join(f"{k}={v}" for k, v in sorted(figures["drafts"].items())) or "none")]
    for rnd, (hits, n, rate) in figures["pass_rate"].items():
        lines.append(f"round {rnd}: pass rate {rate:.1%} ({hits} of {n} rubrics accepted)")
    for tier, (hits, n, rate) in figures["edit_rate"].items():
        lines.append(f"tier {tier}: edit rate {rate:.1%} ({hits} of {n} reviewed criteria edited)")
    for key, label in (("rubric_agreement", "rubric verdicts"), ("criterion_agreement", "criterion verdicts"),
                       ("adjudication_agreement", "adjudication choices")):
        g = figures[key]
        weighted = "" if key == "rubric_agreement" else f", weighted kappa {_num(g['weighted_kappa'])}"
        lines.append(f"agreement on {label}: {g['n']} double-rated, Cohen's kappa {_num(g['kappa'])}{weighted}")
    for key, label in (("review_time", "review"), ("adjudication_time", "adjudication")):
        median, mean, n = figures[key]
        lines.append(f"time per {label} item: median {_num(median, '.1f')} s, mean {_num(mean, '.1f')} s ({n} items)")
    return "\n".join(lines)
