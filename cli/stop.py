"""`promedical stop JOB`: stop a submitted job (Ray sends SIGTERM, then SIGKILL)."""
from __future__ import annotations

import argparse

from promedical.cli.shared import add_address_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stop", help="stop a submitted job")
    p.add_argument("job_id", metavar="JOB")
    add_address_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from promedical.deploy import jobs

    if jobs.stop(args.address, args.job_id):
        print(f"{args.job_id}: stop requested; `promedical status {args.job_id}` shows STOPPED once it ends")
    else:
        print(f"{args.job_id}: not running (already ended)")
    return 0
