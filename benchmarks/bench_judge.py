"""LLM-judge benchmark, side by side in one invocation on this machine:

1. Criteria per second of the local judge (SmolLM2-135M-Instruct, vLLM, verdicts constrained to yes/no)
   on one demo batch (8 demo prompts x 8 sampled responses, every criterion of each): with prefix
   ordering (a response's criteria adjacent, criterion last, vLLM prefix cache on) and without it
   (criterion-major order, prefix cache off). Same triples, same engine settings otherwise; the
   largest difference of the two runs' P(yes) is printed as a check that they judged the same.
2. Demo step time with the judge grader (reward.model=smollm2, local replica) against the demo's
   trained grader (minilm-ecir; --baseline similarity: the zero-shot MiniLM grader, when minilm-ecir is not
   built): `promedical train --config demo` for --steps steps each; the last
   step's time_step and time_score from each run's metric log (the first step carries warm-up).

    flock /tmp/heavy.lock python benchmarks/bench_judge.py [--prompts 8] [--samples 8] [--steps 2] [--json OUT]
    python benchmarks/bench_judge.py --no-train      # part 1 only
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data"


def demo_triples(judge, prompts: int, samples: int):
    """(instruction, response, criterion) of `prompts` demo prompts x `samples` responses sampled by
    SmolLM2 itself (the demo's policy, 64 new tokens at temperature 1), in row order."""
    from vllm import SamplingParams

    from promedical.reward.injection import instruction_text
    from promedical.reward.rubric_io import load_records

    records = load_records(DATA / "medical_train.jsonl")[:prompts]
    tok = judge.tokenizer
    chats = [tok.apply_chat_template([{"role": m.role, "content": m.content} for m in r.messages],
                                     add_generation_prompt=True, tokenize=False) for r in records]
    # no per-request seed: vLLM-CPU cannot rewind a seeded generator when a long prompt's prefill is
    # split across engine steps (RuntimeError "CPU Generator does not use offset"); the engine's seed holds
    params = SamplingParams(n=samples, temperature=1.0, max_tokens=64)
    outs = judge.llm.generate(chats, params, use_tqdm=False)
    return [(instruction_text(r), o.text, c) for r, out in zip(records, outs) for o in out.outputs
            for c in r.criteria]


def judge_dtype() -> str:
    """What reward.dtype=auto resolves to for a judge on this machine's GPU, else its CPU (bf16 only where
    it is native)."""
    import torch

    from promedical.runtime.dtypes import cpu_flags, resolve_dtype
    on_gpu = torch.cuda.is_available()
    return resolve_dtype("auto", "cuda" if on_gpu else "cpu", cpu_flags(),
                         torch.cuda.is_bf16_supported() if on_gpu else None).dtype


def criteria_rate(prefix_order: bool, triples, model: str) -> dict:
    from promedical.actors.judge import make_judge

    judge = make_judge(url="local", model=model, prefix_order=prefix_order, dtype=judge_dtype(), max_prompt_tokens=1024)
    judge.judge_batch(triples[:4])                       # warm-up: grammar compilation, first forward
    start = time.perf_counter()
    verdicts = judge.judge_batch(triples)
    seconds = time.perf_counter() - start
    result = {"prefix_order": prefix_order, "criteria": len(triples), "seconds": round(seconds, 2),
              "criteria_per_s": round(len(triples) / seconds, 2),
              "valid": sum(v.met is not None for v in verdicts), "scores": [v.score for v in verdicts]}
    del judge
    gc.collect()
    return result


def sample_triples(model: str, prompts: int, samples: int):
    from promedical.actors.judge import make_judge

    judge = make_judge(url="local", model=model, dtype=judge_dtype(), max_prompt_tokens=1024)
    triples = demo_triples(judge, prompts, samples)
    del judge
    gc.collect()
    return triples


def demo_step(grader: list[str], steps: int, workdir: Path, name: str) -> dict:
    """A `promedical train --config demo` run; its last step's time_step and time_score."""
    from promedical.storage.metrics_log import iter_events

    run_dir = workdir / name
    cmd = [str(Path(sys.executable).with_name("promedical")), "train", "--config", "demo", "--run-dir", str(run_dir),
           "--set", f"rollout.steps={steps}"]
    for s in grader:
        cmd += ["--set", s]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        return {"run": name, "exit": proc.returncode, "error": proc.stderr.strip().splitlines()[-1:]}
    events = list(iter_events(run_dir / "metrics.msgpack"))
    last = events[-1]
    return {"run": name, "exit": 0, "wall_s": round(wall, 1), "time_step": round(last["time_step"], 2),
            "time_score": round(last["time_score"], 2), "steps": len(events),
            "judge_valid_fraction": [e.get("judge_valid_fraction") for e in events]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2")
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--steps", type=int, default=2, help="demo steps per grader (the last one is reported)")
    p.add_argument("--no-train", action="store_true", help="skip part 2 (the demo runs)")
    p.add_argument("--baseline", default="trained", choices=("trained", "similarity"),
                   help="the demo's grader the judge is compared with (trained: minilm-ecir, built on first use)")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    flags = [f for f in ("avx2", "avx512f", "avx512_bf16") if f in Path("/proc/cpuinfo").read_text()]
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} cores {os.cpu_count()} flags {' '.join(flags)} "
          f"load {os.getloadavg()[0]:.1f}")

    triples = sample_triples(args.model, args.prompts, args.samples)
    with_order = criteria_rate(True, triples, args.model)
    without = criteria_rate(False, triples, args.model)
    diff = max(abs(a - b) for a, b in zip(with_order.pop("scores"), without.pop("scores")))
    print(f"judge {args.model} ({judge_dtype()}) on {args.prompts} demo prompts x {args.samples} responses = {len(triples)} criteria")
    for r in (with_order, without):
        label = "with prefix ordering   " if r["prefix_order"] else "without prefix ordering"
        print(f"  {label}  {r['criteria_per_s']:8.2f} criteria/s  ({r['seconds']:.1f} s, {r['valid']} valid)")
    print(f"  speed-up {with_order['criteria_per_s'] / without['criteria_per_s']:.2f}x; "
          f"largest P(yes) difference between the two {diff:.4f}")
    report = {"criteria": [with_order, without], "max_score_diff": diff, "load_after_part1": os.getloadavg()[0]}

    if not args.no_train:
        with tempfile.TemporaryDirectory() as tmp:
            baseline = ["reward.grader=trained"] if args.baseline == "trained" else [
                "reward.grader=similarity", "reward.model=minilm"]
            runs = [demo_step(baseline, args.steps, Path(tmp), args.baseline),
                    demo_step(["reward.grader=judge", f"reward.model={args.model}"], args.steps, Path(tmp), "judge")]
        print(f"demo step (last of {args.steps}): grader, time_step, time_score, judge_valid_fraction per step")
        for r in runs:
            if r["exit"]:
                print(f"  {r['run']:8s} exit {r['exit']}: {r['error']}")
            else:
                print(f"  {r['run']:10s} {r['time_step']:8.2f} s  score {r['time_score']:7.2f} s  "
                      f"{r['judge_valid_fraction']}  (run wall {r['wall_s']:.0f} s)")
        report["demo"] = runs
    print(f"# load at end {os.getloadavg()[0]:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
