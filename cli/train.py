"""`promedical train`: run GRPO from a preset or config file, or resume a run from its checkpoint."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from promedical.cli.shared import add_config_args
from promedical.errors import UserError
from promedical.rollout.guards import BadValuesError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="run GRPO training")
    add_config_args(p)
    p.add_argument("--run-dir", default=None, help="run directory (default: runs/<preset>-<time>)")
    p.add_argument("--resume", metavar="RUN_DIR", default=None,
                   help="continue RUN_DIR from its latest checkpoint, with the config it was started with")
    p.add_argument("--verbose", action="store_true",
                   help="stream the actors' logs (RUN_DIR/logs/<role>-<replica>.log) to the terminal too")
    p.set_defaults(func=run)


def fits_here(cfg) -> None:
    """With a local Ray (no run.address), refuse at once a plan this machine cannot hold, in resources or
    estimated GPU memory: one line, before a run directory is made or any actor starts."""
    from promedical.deploy.machine import check_plan, gpu_memory_gib, this_machine

    if not cfg.run.address:
        check_plan(cfg, this_machine(), "this machine", gpu_memory_gib())


def run(args: argparse.Namespace) -> int:
    from promedical.deploy.config import load_config
    from promedical.observe.console import Console
    from promedical.deploy.run import default_run_dir, train

    if args.resume:
        run_dir = Path(args.resume)
        if not (run_dir / "config.yaml").is_file():
            raise UserError(f"--resume {run_dir}: no config.yaml there; give the directory of an earlier run")
        cfg = load_config(str(run_dir / "config.yaml"), args.overrides)
    else:
        cfg = load_config(args.config, args.overrides)
        run_dir = Path(args.run_dir or cfg.run.run_dir or default_run_dir(cfg))
    from promedical.deploy.auto_dtypes import resolve_auto_dtypes
    cfg = resolve_auto_dtypes(cfg)      # `auto` dtypes for this machine, before the plan check sizes them
    fits_here(cfg)
    from promedical.deploy.build import resolve_models
    resolve_models(cfg)       # first-use model builds (minilm-ecir: a progress bar) before the live display
    try:
        with Console(cfg.rollout.steps, run_dir, verbose=args.verbose) as console:   # live on a terminal
            train(cfg, run_dir, resume=bool(args.resume), console=console)
    except BadValuesError as exc:       # the run went bad, not its input (that is exit 2): one line, exit 1
        print(f"promedical train: {exc}", file=sys.stderr)
        return 1
    return 0
