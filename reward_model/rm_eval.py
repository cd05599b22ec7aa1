"""Reward-model evaluation on held-out criterion-level labels: pointwise and pairwise accuracy per tier,
safety-veto precision / recall / F1.

The evaluated triples are those of the held-out pairs (each pair's winner and loser under its
criterion), scored in one batched `grade` call. Pointwise: a triple whose response carries a label for
the criterion is correct when (v >= 0.5) equals the label (met; for veto: violation present).
Pairwise: correct when the winner's goodness is strictly higher (goodness = v, or 1 - v for veto).
Veto P/R/F1 count "violation present" as the positive class over the labelled veto triples.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from promedical.reward.injection import instruction_text
from promedical.reward.rubric import RubricRecord, Tier

POINT_THRESHOLD = 0.5


@dataclass
class EvalReport:
    pointwise: dict[str, float] = field(default_factory=dict)   # tier -> accuracy
    pairwise: dict[str, float] = field(default_factory=dict)    # tier -> accuracy
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    veto: dict[str, float] = field(default_factory=dict)        # precision, recall, f1

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def table(self, name: str = "model") -> str:
        return format_table({name: self})


def prf(pred: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    """Precision, recall and F1 of the positive class (0 where undefined)."""
    pred, gold = np.asarray(pred, dtype=bool), np.asarray(gold, dtype=bool)
    tp = float((pred & gold).sum())
    precision = tp / pred.sum() if pred.sum() else 0.0
    recall = tp / gold.sum() if gold.sum() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def _triples(records: list[RubricRecord]):
    """Unique (record index, response index, criterion) triples of all pairs, in first-seen order."""
    seen: dict[tuple[int, int, str], int] = {}
    for ri, r in enumerate(records):
        for p in r.pairs:
            for resp in (p.winner, p.loser):
                seen.setdefault((ri, resp, p.criterion_id), len(seen))
    return seen


def evaluate(grader, records: list[RubricRecord]) -> EvalReport:
    """Score every pair triple of `records` with `grader` (one batched call) and compute the report."""
    index = _triples(records)
    keys = list(index)
    crit = [{c.id: c for c in r.criteria} for r in records]
    instructions = [instruction_text(records[ri]) for ri, _, _ in keys]
    responses = [records[ri].responses[resp].text for ri, resp, _ in keys]
    criteria = [crit[ri][cid] for ri, _, cid in keys]
    v = np.asarray(grader.grade(instructions, responses, criteria), dtype=np.float64)
    is_veto = np.array([c.tier is Tier.VETO for c in criteria])
    goodness = np.where(is_veto, 1.0 - v, v)
    report = EvalReport()
    for tier in Tier:
        pts = [(index[k], records[k[0]].responses[k[1]].labels[k[2]]) for k, c in zip(keys, criteria)
               if c.tier is tier and k[2] in records[k[0]].responses[k[1]].labels]
        prs = [(index[(ri, p.winner, p.criterion_id)], index[(ri, p.loser, p.criterion_id)])
               for ri, r in enumerate(records) for p in r.pairs if crit[ri][p.criterion_id].tier is tier]
        if pts:
            rows, gold = np.array([i for i, _ in pts]), np.array([g for _, g in pts])
            report.pointwise[tier.value] = float(((v[rows] >= POINT_THRESHOLD) == gold).mean())
            if tier is Tier.VETO:
                report.veto = prf(v[rows] >= POINT_THRESHOLD, gold)
        if prs:
            w, l = np.array(prs).T
            report.pairwise[tier.value] = float((goodness[w] > goodness[l]).mean())
        report.counts[tier.value] = {"pointwise": len(pts), "pairwise": len(prs)}
    return report


def format_table(reports: dict[str, EvalReport]) -> str:
    """Models side by side: pointwise and pairwise accuracy per tier, veto P/R/F1."""
    rows = [(f"pointwise acc {t.value}", lambda r, t=t: r.pointwise.get(t.value)) for t in Tier]
    rows += [(f"pairwise acc {t.value}", lambda r, t=t: r.pairwise.get(t.value)) for t in Tier]
    rows += [(f"veto {m}", lambda r, m=m: r.veto.get(m)) for m in ("precision", "recall", "f1")]
    names = list(reports)
    width = max(12, *(len(n) for n in names))
    lines = [f"{'metric':<26}" + "".join(f"{n:>{width + 2}}" for n in names)]
    for label, get in rows:
        cells = "".join(f"{'-' if get(r) is None else f'{get(r):.3f}':>{width + 2}}" for r in reports.values())
        lines.append(f"{label:<26}{cells}")
    any_report = next(iter(reports.values()))
    counts = ", ".join(f"{t}: {c['pointwise']} labels / {c['pairwise']} pairs" for t, c in any_report.counts.items())
    lines.append(f"(n = {counts})")
    return "\n".join(lines)
