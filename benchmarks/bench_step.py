"""Reference-workload benchmark: median step time, time per phase and peak memory of `promedical train`.

    python benchmarks/bench_step.py [--presets tiny demo] [--steps 5] [--set KEY=VALUE ...] [--trl]
    PROMEDICAL_CPU_FLAGS="avx2" python benchmarks/bench_step.py --presets demo --steps 2   # a CPU without bf16

Each preset runs as its own `promedical train` process (a local Ray inside); peak memory is the summed
RSS of that process tree. The first step (compilation, warm-up) is left out of the medians. With --trl,
TRL's GRPOTrainer runs the same workload (demo model, 8 x 8, 64 new tokens) in the same invocation and
the ratio is printed. The header line gives the date, the CPU flags that decide `auto` dtypes, the load
average before and after, and each run prints the dtypes its config.yaml resolved.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from memory import TreeMemory  # noqa: E402

PHASES = ("generate", "score", "reference", "train", "sync")


def run_preset(preset: str, steps: int, work: Path, overrides: list[str]) -> dict:
    import yaml

    from promedical.storage.metrics_log import iter_events

    run_dir = work / preset
    cmd = [sys.executable, "-m", "promedical.cli.main", "train", "--config", preset,
           "--set", f"rollout.steps={steps}", "--run-dir", str(run_dir)]
    for item in overrides:
        cmd += ["--set", item]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    with TreeMemory(proc.pid) as mem:
        _, err = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"{preset} failed:\n{err[-3000:]}")
    written = yaml.safe_load((run_dir / "config.yaml").read_text())
    dtypes = {k: written["model"]["train_dtype"] if k == "model.train_dtype" else written[k.split(".")[0]]["dtype"]
              for k in ("model.train_dtype", "generator.dtype", "reward.dtype")}
    print(f"{preset}: dtypes " + ", ".join(f"{k}={v}" + (" (auto)" if k in written.get("resolved", {}) else "")
                                          for k, v in dtypes.items()), flush=True)
    events = [e for e in iter_events(run_dir / "metrics.msgpack") if "time_step" in e][1:]
    median = lambda key: statistics.median(e[key] for e in events)
    return {"preset": preset, "step_s": median("time_step"), "peak_gib": mem.peak_bytes / 2**30,
            **{p: median(f"time_{p}") for p in PHASES}, "tokens_per_s": median("tokens_per_s")}


def run_trl(steps: int, work: Path) -> dict:
    from promedical.actors.models import resolve_model

    out = work / "trl.json"
    cmd = [sys.executable, str(Path(__file__).with_name("trl_baseline.py")), resolve_model("smollm2"),
           str(steps), str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    with TreeMemory(proc.pid) as mem:
        _, err = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"TRL baseline failed:\n{err[-3000:]}")
    times = json.loads(out.read_text())["step_seconds"][1:]
    return {"preset": "TRL GRPOTrainer", "step_s": statistics.median(times), "peak_gib": mem.peak_bytes / 2**30}


def _need_trl() -> None:
    """Refuse --trl before any run when TRL is not installed (it is the `bench` extra, not in setup.sh)."""
    import importlib.util

    missing = [m for m in ("trl", "datasets") if importlib.util.find_spec(m) is None]
    if missing:
        print(f"bench_step.py: error: --trl needs {' and '.join(missing)}: .venv/bin/pip install -e .[bench]",
              file=sys.stderr)
        raise SystemExit(2)


def header() -> str:
    """Date, CPU, the flags runtime/dtypes.py decides `auto` by, cores and the load average now."""
    import datetime
    import platform

    from promedical.runtime.dtypes import NATIVE_BF16_FLAGS, cpu_flags

    flags = cpu_flags()
    shown = [f for f in ("avx2", "avx512f", *NATIVE_BF16_FLAGS) if f in flags.flags]
    now = datetime.datetime.now(datetime.timezone.utc)
    return (f"{now:%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}, {os.cpu_count()} cores"
            f", CPU flags ({flags.source}): {' '.join(shown) or '-'}, "
            f"load average before: {os.getloadavg()[0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["tiny", "demo"])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--trl", action="store_true", help="also run TRL's GRPOTrainer on the demo workload")
    parser.add_argument("--trl-steps", type=int, default=3)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for every preset run, as `promedical train --set`")
    args = parser.parse_args()
    if args.trl:
        _need_trl()
    print(header(), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run_preset(p, args.steps, Path(tmp), args.overrides) for p in args.presets]
        if args.trl:
            rows.append(run_trl(args.trl_steps, Path(tmp)))
    print(f"{'run':<18}{'step s':>8}{'peak GiB':>10}" + "".join(f"{p:>11}" for p in PHASES) + f"{'tok/s':>8}")
    for r in rows:
        phases = "".join(f"{r[p]:>11.2f}" if p in r else f"{'-':>11}" for p in PHASES)
        tok = f"{r['tokens_per_s']:>8.0f}" if "tokens_per_s" in r else f"{'-':>8}"
        print(f"{r['preset']:<18}{r['step_s']:>8.2f}{r['peak_gib']:>10.2f}{phases}{tok}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    ours = {r["preset"]: r for r in rows}
    if args.trl and "demo" in ours:
        print(f"TRL / ProMedical step time on the demo workload: {rows[-1]['step_s'] / ours['demo']['step_s']:.2f}x")


if __name__ == "__main__":
    main()
