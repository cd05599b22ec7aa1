"""Reward-model benchmark, measured side by side in one run on this machine's CPU:

1. Explicit Criteria Injection vs the criterion-agnostic baseline: both trained with the same recipe
   on data/pairs_train.jsonl, evaluated on data/pairs_heldout.jsonl. Default: all-MiniLM-L6-v2
   cross-encoder with the reward_model/ecir.py ECIR_SPEC recipe; --backbone smollm2 trains the decoder
   (criterion-last layout, reward_model/prefix_scoring.py) with --fusion-layers/--freeze/--lr.
2. Scoring throughput of one rollout group's (response x criterion) triples: one batched grade call
   vs one call per triple, same model, same triples. For a decoder also the batched call with the
   criterion fused at every layer, to separate the two levers (shared prefixes, fusion depth).

    python benchmarks/bench_reward.py [--backbone minilm|smollm2|DIR] [--pairs N] [--threads N] [--json OUT]
    python benchmarks/bench_reward.py --shipped     # the shipped minilm-ecir vs minilm-agnostic, no retraining
    python benchmarks/bench_reward.py --backbone smollm2 --pairs 640 --epochs 1 --no-baseline --beside minilm-ecir
        # the decoder trained here beside a shipped reward model (built once, cached): one held-out table,
        # build seconds and scoring throughput of both
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from promedical.actors.models import resolve_model
from promedical.reward_model.ecir import ECIR_SPEC, ecir_config
from promedical.reward_model.graders import TrainedGrader
from promedical.reward.injection import instruction_text
from promedical.reward_model.rm_eval import evaluate, format_table
from promedical.reward_model.rm_train import TrainConfig, train_reward_model
from promedical.reward.rubric_io import load_records

DATA = Path(__file__).resolve().parents[1] / "data"
ROUNDS = 5
SINGLE_SAMPLE = 48       # triples scored one call each per round (a third of a group)


def grade_batch(args) -> int:
    """Triples per grade pass: a decoder keeps whole instruction groups of up to 256 rows together."""
    return 64 if args.backbone == "minilm" else 256


def recipe(args) -> TrainConfig:
    """ECIR_SPEC for MiniLM; the decoder recipe from the flags otherwise (same for both models)."""
    spec = ECIR_SPEC | ({"pairs": args.pairs} if args.pairs else {}) | ({"epochs": args.epochs} if args.epochs else {}) \
        | ({"autocast": True} if args.autocast else {})
    cfg = ecir_config(spec, threads=args.threads)
    if args.backbone != "minilm":
        cfg = replace(cfg, layout="prefix", fusion_layers=args.fusion_layers, freeze_layers=args.freeze,
                      lr=args.lr)
    return cfg


def train_both(args, work: Path) -> dict:
    train = load_records(DATA / "pairs_train.jsonl")
    out = {}
    for name, use in (("injected", True), ("baseline", False))[:1 if args.no_baseline else 2]:
        cfg = replace(recipe(args), use_criterion=use)
        start = time.perf_counter()
        summary = train_reward_model(resolve_model(args.backbone), train, work / name, cfg, log=lambda m: None)
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


def _rates(grader, ins, resp, crit) -> tuple[float, float]:
    """(batched, single) triples/s: median over ROUNDS alternating rounds, so load from other
    processes hits both paths alike; single calls on the first SINGLE_SAMPLE triples."""
    import statistics

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
    return statistics.median(batched), statistics.median(single)


def _plain_single_rate(grader, ins, resp, crit) -> float:
    """Triples/s of one whole-sequence forward per triple (the same token count as the staged path)."""
    import statistics

    import torch

    from promedical.reward_model.prefix_scoring import score_sequences
    seqs = [grader.scorer.tokens.sequence(i, r, c.text) for i, r, c in zip(ins, resp, crit)][:SINGLE_SAMPLE]
    rates = []
    with torch.inference_mode():
        score_sequences(grader.model, seqs[:1])
        for _ in range(ROUNDS):
            start = time.perf_counter()
            for seq in seqs:
                score_sequences(grader.model, [seq])
            rates.append(len(seqs) / (time.perf_counter() - start))
    return statistics.median(rates)


def throughput(model_dir: Path, records, args) -> dict:
    grader = TrainedGrader(str(model_dir), max_length=ECIR_SPEC["max_length"], batch_size=grade_batch(args),
                           threads=args.threads, dtype=args.dtype)
    ins, resp, crit = group_triples(records, args.group)
    b, s = _rates(grader, ins, resp, crit)
    out = {"triples": len(ins), "layout": grader.layout, "dtype": str(grader.model.dtype).removeprefix("torch."),
           "batched_per_s": b, "grade_single_per_s": s}
    if grader.layout == "prefix":     # the cheapest way to score one triple: one plain forward of its sequence
        s = max(s, _plain_single_rate(grader, ins, resp, crit))
    out |= {"single_per_s": s, "speedup": b / s}
    if grader.layout == "prefix":
        fused = getattr(grader.scorer, "fusion_layers", 0)
        out["fusion_layers"] = fused or grader.model.config.num_hidden_layers
        out["layers"] = grader.model.config.num_hidden_layers
        if fused:         # the same weights with the criterion fused at every layer: speed only
            grader.scorer.fusion_layers = 0
            out["all_layers_batched_per_s"] = _rates(grader, ins, resp, crit)[0]
            grader.scorer.fusion_layers = fused
    return out


def report_throughput(speed: dict) -> None:
    print(f"\nscoring throughput, one group of {speed['triples']} (response x criterion) triples, CPU, "
          f"median of {ROUNDS} alternating rounds, layout {speed['layout']}, {speed['dtype']}:")
    if "all_layers_batched_per_s" in speed:
        a = speed["all_layers_batched_per_s"]
        print(f"  batched, criterion fused at all {speed['layers']} layers: {a:8.1f} triples/s  "
              f"({a / speed['single_per_s']:.1f}x)")
    label = "batched (one grade call)"
    if "fusion_layers" in speed:
        label = (f"batched, criterion at all {speed['layers']} layers" if speed["fusion_layers"] == speed["layers"]
                 else f"batched, criterion in the top {speed['fusion_layers']} layers")
    print(f"  {label + ':':<44}{speed['batched_per_s']:8.1f} triples/s")
    print(f"  {'one call per triple:':<44}{speed['single_per_s']:8.1f} triples/s"
          + (" (the faster of grade() and one plain forward)" if speed["layout"] == "prefix" else ""))
    print(f"  {'speed-up:':<44}{speed['speedup']:8.1f}x")


def evaluate_shipped(args) -> None:
    """The shipped injected model and its criterion-agnostic twin side by side on the held-out pairs."""
    from promedical.reward_model.ecir import SHIPPED_MODELS
    from promedical.reward_model.models import resolve_reward_model

    heldout = load_records(DATA / "pairs_heldout.jsonl")
    heldout = heldout[:args.heldout_records] if args.heldout_records else heldout
    reports, seconds = {}, {}
    for label, name in (("injected", "minilm-ecir"), ("baseline", "minilm-agnostic")):
        start = time.perf_counter()
        path = resolve_reward_model(name)
        seconds[name] = {"resolve": time.perf_counter() - start}
        start = time.perf_counter()
        grader = TrainedGrader(path, max_length=SHIPPED_MODELS[name]["max_length"], threads=args.threads,
                               batch_size=grade_batch(args))
        reports[label] = evaluate(grader, heldout)
        seconds[name]["eval"] = time.perf_counter() - start
    print(f"held-out: {len(heldout)} prompts of data/pairs_heldout.jsonl; recipe ECIR_SPEC {ECIR_SPEC}")
    print(format_table(reports))
    print("seconds: " + json.dumps({k: {a: round(b, 1) for a, b in v.items()} for k, v in seconds.items()}))
    if args.json:
        payload = {"reports": {k: json.loads(r.to_json()) for k, r in reports.items()}, "seconds": seconds,
                   "recipe": ECIR_SPEC}
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")


def beside(args, models: dict, heldout) -> dict:
    """Shipped reward model `args.beside` (built on first use, its build timed) evaluated on the same held-out
    pairs as the model(s) trained here, and its throughput on the same group of triples."""
    from promedical.reward_model.ecir import BUILD_FILE, SHIPPED_MODELS
    from promedical.reward_model.models import resolve_reward_model

    start = time.perf_counter()
    path = resolve_reward_model(args.beside)      # a shipped name (built once if needed) or a checkpoint dir
    resolve_s = time.perf_counter() - start
    spec = SHIPPED_MODELS.get(args.beside, ECIR_SPEC)
    grader = TrainedGrader(path, max_length=spec["max_length"], threads=args.threads, batch_size=64)
    start = time.perf_counter()
    report = evaluate(grader, heldout)
    eval_s = time.perf_counter() - start
    speed = throughput(Path(path), heldout, argparse.Namespace(**(vars(args) | {"backbone": "minilm"})))
    build = json.loads((Path(path) / BUILD_FILE).read_text()).get("seconds") \
        if (Path(path) / BUILD_FILE).exists() else None
    return {"report": report, "resolve_seconds": resolve_s, "eval_seconds": eval_s, "throughput": speed,
            "build_seconds": build}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=0, help=f"training pairs (default ECIR_SPEC: {ECIR_SPEC['pairs'] or 'all'})")
    p.add_argument("--heldout-records", type=int, default=0, help="evaluate on the first N held-out prompts (0 = all)")
    p.add_argument("--group", type=int, default=8, help="responses per rollout group in the throughput test")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--epochs", type=float, default=0, help="passes over the training pairs (default ECIR_SPEC's)")
    p.add_argument("--no-baseline", action="store_true", help="train only the injected model (no agnostic twin)")
    p.add_argument("--autocast", action="store_true", help="bf16-autocast training steps (TrainConfig.autocast_bf16)")
    p.add_argument("--beside", default=None, metavar="NAME",
                   help="also evaluate shipped reward model NAME (e.g. minilm-ecir) on the same pairs and triples")
    p.add_argument("--backbone", default="minilm", help="minilm (cross-encoder, ECIR_SPEC), smollm2, or a decoder dir")
    p.add_argument("--fusion-layers", type=int, default=0, help="decoder: top layers where criterion meets response (0 = all)")
    p.add_argument("--freeze", type=int, default=22, help="decoder: frozen lowest layers (and embeddings)")
    p.add_argument("--lr", type=float, default=1e-4, help="decoder learning rate")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32", help="weights in the throughput test")
    p.add_argument("--json", default=None)
    p.add_argument("--throughput-only", default=None, metavar="MODEL_DIR",
                   help="skip training and evaluation; measure throughput of this checkpoint")
    p.add_argument("--shipped", action="store_true",
                   help="evaluate the shipped minilm-ecir and minilm-agnostic (built once on first use, "
                        "reward_model/ecir.py) instead of training both here; no throughput test")
    args = p.parse_args()
    if args.shipped:
        evaluate_shipped(args)
        return
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
            grader = TrainedGrader(str(m["dir"]), max_length=ECIR_SPEC["max_length"], threads=args.threads,
                                   batch_size=grade_batch(args))
            reports[name] = evaluate(grader, heldout)
            m["eval_seconds"] = time.perf_counter() - start
        speed = throughput(models["injected"]["dir"], heldout, args)
        other = beside(args, models, heldout) if args.beside else None
    if other:
        reports[args.beside] = other["report"]
    print(f"\nheld-out: {len(heldout)} prompts of data/pairs_heldout.jsonl")
    print(format_table(reports))
    print("seconds: " + json.dumps({k: {"train": round(m["train_seconds"], 1), "eval": round(m["eval_seconds"], 1)}
                                    for k, m in models.items()}
                                   | ({args.beside: {"build (recorded)": other["build_seconds"],
                                                     "resolve": round(other["resolve_seconds"], 1),
                                                     "eval": round(other["eval_seconds"], 1)}} if other else {})))
    report_throughput(speed)
    if other:
        print(f"({args.beside})", end="")
        report_throughput(other["throughput"])
    if args.json:
        payload = {"reports": {k: json.loads(r.to_json()) for k, r in reports.items()}, "throughput": speed,
                   "train_seconds": {k: m["train_seconds"] for k, m in models.items()}}
        if other:
            payload["beside"] = {k: v for k, v in other.items() if k != "report"}
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
