"""Scale-out side by side: tiny steps/s with 1 vs 2 policy ranks and 1 vs 2 generators, and the bytes
that pass through the driver per step on the demo.

    .venv/bin/python benchmarks/bench_scale.py                     # tiny layouts, then the demo bytes
    .venv/bin/python benchmarks/bench_scale.py --steps 8 --no-demo

Every layout is trained in this one process and one local Ray session (`deploy.run.train`); steps/s
counts the steps after the first (engine warm-up) from the metric log's per-step wall times.

Driver bytes, after: the `driver_bytes` metric of each step (summary and reward columns the driver
reads, plus the training columns it sends). Before (the loop up to commit 9ba1e20, which fetched the
generated batch, the reward and the reference columns with ray.get and shipped the merged batch to the
policy by value): twice the Arrow size of the step's whole batch, read back from the same run's
rollout files. The "before" figure is that data flow's size, computed, not a second run of old code.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

WARMUP_STEPS = 1
LAYOUTS = {   # name -> overrides
    "policy 1, generators 1": [],
    "policy 2, generators 1": ["placement.roles.policy.replicas=2"],
    "policy 1, generators 2": ["generator.replicas=2"],
    "policy 2, generators 2": ["placement.roles.policy.replicas=2", "generator.replicas=2"],
}


def train_and_read(preset: str, overrides: list[str], run_dir: Path) -> list[dict]:
    from promedical.deploy.config import load_config
    from promedical.deploy.run import train
    from promedical.storage.metrics_log import iter_events

    train(load_config(preset, overrides), run_dir)
    return [e for e in iter_events(run_dir / "metrics.msgpack") if "time_step" in e]


def steps_per_s(events: list[dict]) -> float:
    timed = events[WARMUP_STEPS:]
    return len(timed) / sum(float(e["time_step"]) for e in timed)


def tiny_table(steps: int, root: Path, extra: list[str]) -> str:
    rows = []
    for name, overrides in LAYOUTS.items():
        events = train_and_read("tiny", [*extra, *overrides, f"rollout.steps={steps}", "run.save_rollouts=false"],
                                root / name.replace(" ", "").replace(",", "-"))
        timed = events[WARMUP_STEPS:]
        rows.append((name, steps_per_s(events), statistics.fmean(e["time_generate"] for e in timed),
                     statistics.fmean(e["time_train"] for e in timed)))
    base = rows[0][1]
    lines = [f"tiny, {steps} steps (first left out), one process, one local Ray",
             f"{'layout':<26}{'steps/s':>9}{'vs 1+1':>8}{'generate s':>12}{'train s':>9}"]
    lines += [f"{n:<26}{s:>9.3f}{s / base:>8.2f}{g:>12.3f}{t:>9.3f}" for n, s, g, t in rows]
    return "\n".join(lines)


def demo_bytes(steps: int, root: Path, extra: list[str]) -> str:
    import pyarrow as pa

    run_dir = root / "demo"
    events = train_and_read("demo", [*extra, f"rollout.steps={steps}"], run_dir)
    after = statistics.fmean(e["driver_bytes"] for e in events)
    files = sorted((run_dir / "rollouts").glob("step_*.arrow"))
    whole = statistics.fmean(pa.ipc.open_file(pa.memory_map(str(p))).read_all().nbytes for p in files)
    before = 2 * whole
    return (f"demo, {steps} steps: bytes through the driver per step\n"
            f"  before (whole batch fetched, then sent to the policy): {before / 1e6:8.3f} MB\n"
            f"  after  (summary + reward columns read, training columns sent): {after / 1e6:8.3f} MB\n"
            f"  ratio before/after: {before / after:.1f}x   (whole batch {whole / 1e6:.3f} MB per step)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8, help="tiny steps per layout")
    parser.add_argument("--demo-steps", type=int, default=3)
    parser.add_argument("--no-demo", action="store_true")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", default="", help="keep run directories here (default: a temp dir)")
    args = parser.parse_args(argv)
    import ray

    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        root = Path(args.out or tmp)
        try:
            print(tiny_table(args.steps, root, args.overrides), flush=True)
            if not args.no_demo:
                print(demo_bytes(args.demo_steps, root, args.overrides), flush=True)
        finally:
            ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
