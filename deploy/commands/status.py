"""`promedical status JOB`: a submitted job's state, message and run directory."""
from __future__ import annotations

import argparse

from promedical.deploy.commands.shared import add_address_arg


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
    return 0
