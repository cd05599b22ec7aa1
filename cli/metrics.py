"""`promedical metrics RUN_DIR|JOB`: per-step rollout metrics, live with --follow, JSON lines with --json."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Iterator

from promedical.cli.shared import add_address_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("metrics", help="show per-step metrics of a run directory or a submitted job")
    p.add_argument("target", metavar="RUN_DIR|JOB", help="a local run directory or a job id")
    p.add_argument("--follow", "-f", action="store_true", help="keep updating until the run or job ends")
    p.add_argument("--json", action="store_true", help="print one JSON record per step")
    add_address_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        return show(args)
    except BrokenPipeError:                 # `promedical metrics RUN_DIR | head`: the reader left
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def show(args: argparse.Namespace) -> int:
    from promedical.observe import metrics_view as view

    if view.is_run_dir_target(args.target):
        events = view.run_dir_events(Path(args.target), args.follow)
        view.render(events, args.json, lambda line: print(line, flush=True))
        return 0
    events = job_events(args.address, args.target, args.follow)
    view.render(events, args.json, lambda line: print(line, flush=True))
    return job_outcome(args.address, args.target) if args.follow else 0


def job_events(address: str | None, job_id: str, follow: bool) -> Iterator[dict[str, Any]]:
    """The step events a submitted job's log lines echo (followed live with `follow`)."""
    from promedical.deploy import jobs
    from promedical.observe.metrics_view import log_events

    lines = jobs.follow_lines(address, job_id) if follow else jobs.logs(address, job_id).splitlines()
    yield from log_events(lines)


def job_outcome(address: str | None, job_id: str) -> int:
    """After following a job: say how it ended on stderr; 1 if it failed, so scripts notice."""
    from promedical.deploy import jobs

    info = jobs.status(address, job_id)
    print(f"{job_id}: {info['status']}" + (f" ({info['message'].splitlines()[0]})" if info["message"] else ""),
          file=sys.stderr)
    return 1 if info["status"] == "FAILED" else 0
