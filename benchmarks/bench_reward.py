"""Reward-model benchmark, measured side by side in one run on this machine's CPU:

1. Explicit Criteria Injection vs the criterion-agnostic baseline: both trained with the same recipe
   (reward/ecir.py ECIR_SPEC) on data/pairs_train.jsonl, evaluated on data/pairs_heldout.jsonl.
2. Scoring throughput of one rollout group's (response x criterion) triples: one batched grade call
   vs one call per triple, same model, same triples.

    python benchmarks/bench_reward.py [--pairs N] [--heldout-records N] [--threads N] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from promedical.actors.models import resolve_model
from promedical.reward.ecir import ECIR_SPEC, ecir_config
from promedical.reward.graders import TrainedGrader
from promedical.reward.injection import instruction_text
from promedical.reward.rm_eval import evaluate, format_table
from promedical.reward.rm_train import train_reward_model
from promedical.reward.rubric_io import load_records

DATA = Path(__file__).resolve().parents[1] / "data"
ROUNDS = 5
SINGLE_SAMPLE = 48       # triples scored one call each per round (a third of a group)


def train_both(args, work: Path) -> dict:
    train = load_records(DATA / "pairs_train.jsonl")
    spec = ECIR_SPEC | ({"pairs": args.pairs} if args.pairs else {})
    out = {}
    for name, use in (("injected", True), ("baseline", False)):
        cfg = ecir_config(spec, threads=args.threads)
        cfg = type(cfg)(**{**cfg.__dict__, "use_criterion": use})
        start = time.perf_counter()
        summary = train_reward_model(resolve_model("minilm"), train, work / name, cfg, log=lambda m: None)
        out[name] = {"dir": work / name, "train_seconds": time.perf_counter() - start, "summary": summary}
        print(f"{name}: trained on {summary['pairs']} pairs, {summary['steps']} steps, "
              f"{out[name]['train_seconds']:.1f} s wall, loss {summary['first_loss']:.3f} -> {summary['final_loss']:.3f}",
              flush=True)
    return out


def group_triples(records, group: int):
    """One rollout group: `group` responses of one prompt, each under every criterion of its rubric."""
    rec = max(records, key=lambda r: len(r.responses))
    responses = [r.text for r in rec.responses][:group]
    instruction = instruction_text(rec)
    items = [(instruction, resp, c) for resp in responses for c in rec.criteria]
    return [i for i, _, _ in items], [r for _, r, _ in items], [c for _, _, c in items]


def throughput(model_dir: Path, records, args) -> dict:
    """Median over ROUNDS alternating rounds (so load from other processes hits both paths alike)."""
    import statistics

    grader = TrainedGrader(str(model_dir), max_length=ECIR_SPEC["max_length"], batch_size=64, threads=args.threads)
    ins, resp, crit = group_triples(records, args.group)
    grader.grade(ins[:2], resp[:2], crit[:2])                       # warm-up
    batched, single = [], []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        grader.grade(ins, resp, crit)
        batched.append(len(ins) / (time.perf_counter() - start))
        start = time.perf_counter()
        for i, r, c in zip(ins[:SINGLE_SAMPLE], resp[:SINGLE_SAMPLE], crit[:SINGLE_SAMPLE]):
            grader.grade([i], [r], [c])
        single.append(min(SINGLE_SAMPLE, len(ins)) / (time.perf_counter() - start))
    b, s = statistics.median(batched), statistics.median(single)
    return {"triples": len(ins), "batched_per_s": b, "single_per_s": s, "speedup": b / s,
            "rounds": {"batched": batched, "single": single}}


def report_throughput(speed: dict) -> None:
    print(f"\nscoring throughput, one group of {speed['triples']} (response x criterion) triples, CPU, "
          f"median of {ROUNDS} alternating rounds:")
    print(f"  batched (one grade call): {speed['batched_per_s']:8.1f} triples/s")
    print(f"  one call per triple:      {speed['single_per_s']:8.1f} triples/s")
    print(f"  speed-up:                 {speed['speedup']:8.1f}x")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=0, help=f"training pairs (default ECIR_SPEC: {ECIR_SPEC['pairs']})")
    p.add_argument("--heldout-records", type=int, default=0, help="evaluate on the first N held-out prompts (0 = all)")
    p.add_argument("--group", type=int, default=8, help="responses per rollout group in the throughput test")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--json", default=None)
    p.add_argument("--throughput-only", default=None, metavar="MODEL_DIR",
                   help="skip training and evaluation; measure throughput of this checkpoint")
    args = p.parse_args()
    if args.throughput_only:
        report_throughput(throughput(Path(args.throughput_only), load_records(DATA / "pairs_heldout.jsonl"), args))
        return
    heldout = load_records(DATA / "pairs_heldout.jsonl")
    heldout = heldout[:args.heldout_records] if args.heldout_records else heldout
    with tempfile.TemporaryDirectory() as tmp:
        models = train_both(args, Path(tmp))
        reports = {}
        for name, m in models.items():
            start = time.perf_counter()
            grader = TrainedGrader(str(m["dir"]), max_length=ECIR_SPEC["max_length"], threads=args.threads)
            reports[name] = evaluate(grader, heldout)
            m["eval_seconds"] = time.perf_counter() - start
        print(f"\nheld-out: {len(heldout)} prompts of data/pairs_heldout.jsonl")
        print(format_table(reports))
        speed = throughput(models["injected"]["dir"], heldout, args)
    report_throughput(speed)
    if args.json:
        payload = {"reports": {k: json.loads(r.to_json()) for k, r in reports.items()}, "throughput": speed,
                   "train_seconds": {k: m["train_seconds"] for k, m in models.items()}}
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
