"""Soak: a long tiny run with a random actor SIGKILLed about every 20 steps; restarts, seconds lost and
peak memory per 50 steps (memory must stay flat: replaced actors must not leak).

    .venv/bin/python benchmarks/bench_soak.py                    # 200 steps, a kill every ~20
    .venv/bin/python benchmarks/bench_soak.py --steps 60 --every 15 --seed 1

The run is `promedical.deploy.run.train` in a thread of this process on a local Ray; the killer
thread picks the victim's role from a seeded generator (generator, reward, reference or policy; a
killed policy resumes from the latest checkpoint, `run.checkpoint_every` 10), waits for the victim's
step, and SIGKILLs that actor's process. Memory is the summed RSS of this process tree (an upper
bound: shared pages count once per process), sampled every 0.25 s and binned by the step being run.
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from memory import TreeMemory  # noqa: E402

ROLES = {"generator": "Generator", "reward": "RewardModel", "reference": "Reference", "policy": "Policy"}
BIN = 50


def alive_pid(class_name: str) -> int | None:
    from ray._private.state import actors
    pids = [a["Pid"] for a in actors().values() if a["ActorClassName"] == class_name and a["State"] == "ALIVE"]
    return pids[0] if pids else None


def steps_logged(log: Path) -> int:
    from promedical.storage.metrics_log import read_events
    return sum(1 for e in read_events(log)[0] if "event" not in e) if log.exists() else 0


class Killer(threading.Thread):
    """Kills a random role's actor about every `every` steps (jittered), from a seeded generator."""

    def __init__(self, log: Path, steps: int, every: int, seed: int) -> None:
        super().__init__(daemon=True)
        self.log, self.rng, self.done = log, random.Random(seed), threading.Event()
        self.plan = []
        at = 0
        while True:
            at += self.rng.randint(every // 2, every + every // 2)
            if at >= steps - 2:
                break
            self.plan.append((at, self.rng.choice(sorted(ROLES))))
        self.kills: list[tuple[int, str]] = []

    def run(self) -> None:
        for at, role in self.plan:
            while not self.done.is_set() and steps_logged(self.log) < at:
                time.sleep(0.05)
            pid = alive_pid(ROLES[role])
            if self.done.is_set() or pid is None:
                return
            os.kill(pid, signal.SIGKILL)
            self.kills.append((at, role))


class StepMemory(TreeMemory):
    """TreeMemory that also keeps the peak per bin of BIN steps."""

    def __init__(self, log: Path) -> None:
        super().__init__(os.getpid())
        self.log, self.by_bin = log, {}

    def _run(self) -> None:
        while not self._stop.is_set():
            rss, k = self._sample(), steps_logged(self.log) // BIN
            self.by_bin[k] = max(self.by_bin.get(k, 0), rss)
            time.sleep(self.period)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--every", type=int, default=20, help="steps between kills, on average")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="")
    args = parser.parse_args(argv)
    import ray

    from promedical.deploy.config import load_config
    from promedical.deploy.run import train
    from promedical.storage.metrics_log import read_events

    overrides = [f"rollout.steps={args.steps}", "run.checkpoint_every=10", "fault.resume_attempts=20",
                 "rollout.prompts_per_step=2", "rollout.group_size=4", "rollout.max_new_tokens=12",
                 "run.save_rollouts=false", "fault.timeout_s.generator=120"]
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        run_dir = Path(args.out or tmp) / "soak"
        log = run_dir / "metrics.msgpack"
        killer = Killer(log, args.steps, args.every, args.seed)
        start = time.time()
        try:
            with StepMemory(log) as memory:
                killer.start()
                train(load_config("tiny", overrides), run_dir)
                killer.done.set()
        finally:
            ray.shutdown()
        events = read_events(log)[0]
        wall = time.time() - start
    restarts = [e for e in events if e.get("event") == "restart"]
    print(f"soak: {args.steps} tiny steps in {wall:.0f} s, {len(killer.kills)} kills "
          f"({', '.join(f'{r}@{s}' for s, r in killer.kills)}), {len(restarts)} restarts logged")
    print(f"{'steps':<12}{'restarts':>9}{'seconds lost':>14}{'peak GiB':>10}")
    for k in range(-(-args.steps // BIN)):
        lo, hi = k * BIN, min(args.steps, (k + 1) * BIN)
        here = [e for e in restarts if lo <= e["step"] < hi]
        lost = sum(e["seconds_lost"] for e in here)
        print(f"{f'{lo}-{hi - 1}':<12}{len(here):>9}{lost:>14.1f}{memory.by_bin.get(k, 0) / 2**30:>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
