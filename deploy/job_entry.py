"""The driver a submitted job runs on the cluster: train, echo each metric event to stdout, mark the end.

    python -m promedical.deploy.job_entry --config job_config.yaml --run-dir ~/promedical-runs/ID

The echo lets `promedical metrics JOB` follow a run whose directory only the cluster can see; it tails
the durable log rather than hooking the loop, so what a client sees is exactly what was logged.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from promedical.observe.metrics_view import DONE_MARKER, END_PREFIX, METRICS_PREFIX, to_json

ECHO_POLL_S = 0.5


class Echo(threading.Thread):
    """Prints every event appended to RUN_DIR/metrics.msgpack as one prefixed JSON line on stdout."""

    def __init__(self, log_path: Path) -> None:
        super().__init__(name="metrics-echo", daemon=True)
        self.log_path = log_path
        self.offset = 0
        self.stopping = threading.Event()

    def drain(self) -> None:
        from promedical.storage.metrics_log import read_events

        events, self.offset = read_events(self.log_path, self.offset)
        for event in events:
            sys.stdout.write(METRICS_PREFIX + to_json(event) + "\n")
        sys.stdout.flush()

    def run(self) -> None:
        while not self.stopping.wait(ECHO_POLL_S):
            self.drain()

    def finish(self) -> None:
        self.stopping.set()
        self.join()
        self.drain()


def supervise(config: str, run_dir: Path, attempts: int) -> None:
    """Run the driver as a child process; if it dies (killed, lost its node's Ray connection) and a
    checkpoint exists, start it again with --resume, up to `attempts` times, logging a restart event."""
    import subprocess

    from promedical.storage.metrics_log import MetricsLog, read_events

    resume = False
    for attempt in range(attempts + 1):
        cmd = [sys.executable, "-m", "promedical.deploy.job_entry", "--config", config, "--run-dir", str(run_dir),
               "--child"] + (["--resume"] if resume else [])
        code = subprocess.run(cmd).returncode
        if code == 0:
            return
        checkpoints = sorted((run_dir / "checkpoints").glob("step_*")) if (run_dir / "checkpoints").is_dir() else []
        if attempt == attempts or not checkpoints or code in (1, 2):   # 1, 2: the run itself failed or bad input
            raise SystemExit(code)
        steps = [e for e in read_events(run_dir / "metrics.msgpack")[0] if "event" not in e]
        log = MetricsLog(run_dir / "metrics.msgpack")
        redone = sum(e.get("time_step", 0.0) for e in steps if e["step"] >= int(checkpoints[-1].name.split("_")[1]))
        log.append({"event": "restart", "role": "driver", "replica": 0, "cause": f"exit {code}",
                    "resumed_from": checkpoints[-1].name, "seconds_lost": round(redone, 3),
                    "step": steps[-1]["step"] if steps else 0,
                    "policy_version": steps[-1]["policy_version"] if steps else 0})
        log.close()
        resume = True


def _on_sigterm(signum, frame) -> None:
    """`ray job stop` sends SIGTERM; exit like Ray's own driver handler (installed by ray.init) does."""
    sys.exit(signum)


def main(argv: list[str] | None = None) -> int:
    from promedical.deploy.config import load_config
    from promedical.deploy.run import train

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--config", required=True)
    p.add_argument("--run-dir", required=True)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)    # one attempt, under supervise()
    p.add_argument("--resume", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:                   # the supervisor echoes the log and marks the end
        from promedical.deploy.config import load_config as load
        from promedical.deploy.run import train as run_train
        from promedical.rollout.guards import BadValuesError
        try:
            run_train(load(args.config), Path(args.run_dir).expanduser().resolve(), resume=args.resume)
        except BadValuesError as exc:          # the run went bad: one line, exit 1, never restarted
            print(f"promedical train: {exc}", file=sys.stderr)
            return 1
        return 0
    run_dir = Path(args.run_dir).expanduser().resolve()
    signal.signal(signal.SIGTERM, _on_sigterm)
    echo = Echo(run_dir / "metrics.msgpack")
    echo.start()
    outcome, error = "failed", ""
    try:
        if args.child:
            train(load_config(args.config), run_dir, resume=args.resume)
        else:
            supervise(args.config, run_dir, load_config(args.config).fault.resume_attempts)
        outcome = "finished"
    except SystemExit as exc:
        if exc.code != signal.SIGTERM:
            raise
        outcome = "stopped"
        return 128 + signal.SIGTERM
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        raise
    finally:
        echo.finish()
        end = json.dumps({"status": outcome, "run_dir": str(run_dir), **({"error": error} if error else {})})
        if run_dir.is_dir():
            (run_dir / DONE_MARKER).write_text(end + "\n", encoding="utf-8")
        print(END_PREFIX + end, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
