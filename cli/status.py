"""`promedical status JOB`: a submitted job's state, message and run directory."""
from __future__ import annotations

import argparse

from promedical.cli.shared import add_address_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="show a submitted job's status")
    p.add_argument("job_id", metavar="JOB")
    add_address_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from promedical.deploy import jobs

    info = jobs.status(args.address, args.job_id)
    print(f"{info['job_id']}: {info['status']}")
    if info["message"]:
        print(f"  {info['message']}")
    if info["run_dir"]:
        print(f"  run directory on the cluster: {info['run_dir']}")
    for line in restart_lines(jobs.logs(args.address, args.job_id)):
        print(line)
    return 0


def restart_lines(log: str) -> list[str]:
    """The job's restarts (replaced replicas, resumed attempts), read from the events its driver echoed."""
    from promedical.observe.metrics_view import parse_line, restart_line

    restarts = [e for e in map(parse_line, log.splitlines()) if e and e.get("event") == "restart"]
    return [f"  {len(restarts)} restart(s):"] + [restart_line(e) for e in restarts] if restarts else []
