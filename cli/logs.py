"""`promedical logs JOB [--follow]`: a submitted job's driver log."""
from __future__ import annotations

import argparse
import sys

from promedical.cli.shared import add_address_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("logs", help="print a submitted job's log")
    p.add_argument("job_id", metavar="JOB")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing until the job ends")
    add_address_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from promedical.deploy import jobs

    if not args.follow:
        sys.stdout.write(jobs.logs(args.address, args.job_id))
        return 0
    for line in jobs.follow_lines(args.address, args.job_id):
        print(line, flush=True)
    return 0
