"""The `promedical` command line: one subcommand per module of cli/."""
from __future__ import annotations

import argparse
import importlib
import sys

from promedical.errors import UserError

COMMANDS = ("train", "plan", "data", "submit", "status", "logs", "stop", "metrics", "report", "eval",
            "label", "train_rm", "eval_rm", "serve_rm", "rubrics")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="promedical", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"promedical.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"promedical {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"promedical {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:            # the reader went away (`promedical logs JOB | head`): not an error
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # no second error at exit flush
        return 0


if __name__ == "__main__":
    sys.exit(main())
