"""First run as a new user has it: a fresh clone, `./setup.sh && .venv/bin/promedical train`, wall seconds.

    python benchmarks/bench_first_run.py [--work /tmp/first-run] [--set KEY=VALUE ...]

The clone is of this repository's HEAD (committed files only), set up in its own .venv, with an empty
PROMEDICAL_CACHE, so the first-use models (SmolLM2's GGUF conversion, minilm-ecir) are made inside the
measured time. pip's download/wheel cache in ~/.cache/pip is shared with earlier installs (say so next
to the figure). Prints the date, CPU flags and load, each phase's seconds and the total.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_step import header  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def timed(cmd: list[str], cwd: Path, env: dict, log: Path) -> float:
    start = time.perf_counter()
    with open(log, "w") as out:
        code = subprocess.run(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    if code:
        raise SystemExit(f"{' '.join(cmd)} failed (exit {code}); see {log}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="/tmp/promedical-first-run", help="emptied, then holds clone and cache")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    clone, cache = work / "clone", work / "cache"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PROMEDICAL_CACHE"] = str(cache)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p)
    print(header(), flush=True)
    start = time.perf_counter()
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=clone, capture_output=True, text=True).stdout
    setup = timed(["./setup.sh"], clone, env, work / "setup.log")
    train_cmd = [".venv/bin/promedical", "train", "--run-dir", str(work / "run")]
    for item in args.overrides:
        train_cmd += ["--set", item]
    train = timed(train_cmd, clone, env, work / "train.log")
    total = time.perf_counter() - start
    print(f"commit {commit.strip()}, PROMEDICAL_CACHE empty at start, pip cache shared")
    print(f"{'clone + ./setup.sh':<34}{setup:>9.0f} s")
    print(f"{'promedical train (first use incl.)':<34}{train:>9.0f} s")
    print(f"{'total':<34}{total:>9.0f} s  ({total / 60:.1f} min)   load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
