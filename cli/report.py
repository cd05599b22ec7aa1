"""`promedical report RUN_DIR`: PNG plots and a markdown summary of a run, in RUN_DIR/report/."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write plots and a summary of a run into RUN_DIR/report/")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from promedical.observe.report import write_report

    out = write_report(Path(args.run_dir))
    for path in sorted(out.iterdir()):
        print(path)
    return 0
