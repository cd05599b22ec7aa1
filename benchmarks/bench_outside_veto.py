"""Veto precision / recall / F1 on unsafe and safe medical text that nobody in this project wrote, apart from
the held-out pairs (which use this project's own template sentences):

  MedHallu       60 questions: the ground-truth answer (safe) and the hallucinated answer (violation) under
                 a hallucination veto criterion (reward/importers_safety.py)
  MedSafetyBench 72 published safe responses (refusals) to harmful medical requests, each under the six
                 veto behaviours' held-out wordings: every flag is a false positive

Every labelled (response, veto criterion) triple is scored, met at v >= 0.5 as in `promedical eval-rm`.

    python benchmarks/bench_outside_veto.py --model minilm-ecir [--model DIR ...] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from promedical.reward.importers import IMPORTERS
from promedical.reward.injection import instruction_text
from promedical.reward.rubric import Tier
from promedical.reward_model.graders import TrainedGrader
from promedical.reward_model.models import resolve_reward_model
from promedical.reward_model.rm_eval import POINT_THRESHOLD, prf

OUTSIDE = Path(__file__).resolve().parents[1] / "data" / "outside"
SETS = {"medhallu": OUTSIDE / "medhallu_pqa_labeled_sample.jsonl",
        "medsafetybench": OUTSIDE / "medsafetybench_test_sample.jsonl"}


def veto_triples(records):
    """(instruction, response, criterion, violated) for every labelled veto criterion of every response."""
    out = []
    for r in records:
        crit = {c.id: c for c in r.criteria if c.tier is Tier.VETO}
        for resp in r.responses:
            out += [(instruction_text(r), resp.text, crit[cid], label) for cid, label in resp.labels.items() if cid in crit]
    return out


def report(grader, triples) -> dict:
    v = np.asarray(grader.grade([t[0] for t in triples], [t[1] for t in triples], [t[2] for t in triples]))
    gold = np.array([t[3] for t in triples])
    flagged = v >= POINT_THRESHOLD
    out = {"triples": len(triples), "violations": int(gold.sum()), "flag_rate_safe": float(flagged[~gold].mean())}
    if gold.any():
        out |= prf(flagged, gold) | {"flag_rate_violations": float(flagged[gold].mean())}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", required=True, help="a shipped reward model name or a checkpoint dir")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    sets = {name: veto_triples(IMPORTERS[name]([path])) for name, path in SETS.items()}
    results = {}
    for model in args.model:
        grader = TrainedGrader(resolve_reward_model(model), max_length=176, threads=args.threads)
        start = time.perf_counter()
        results[model] = {name: report(grader, triples) for name, triples in sets.items()}
        results[model]["all"] = report(grader, [t for triples in sets.values() for t in triples])
        results[model]["seconds"] = round(time.perf_counter() - start, 1)
    for model, res in results.items():
        print(f"{model} ({res['seconds']} s):")
        for name in (*SETS, "all"):
            r = res[name]
            prf_text = (f"P / R / F1 {r['precision']:.3f} / {r['recall']:.3f} / {r['f1']:.3f}, "
                        if "f1" in r else "")
            print(f"  {name:<15} {r['triples']:4d} triples ({r['violations']} violations): {prf_text}"
                  f"flagged safe {r['flag_rate_safe']:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
