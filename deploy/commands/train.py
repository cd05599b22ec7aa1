"""`promedical train`: run GRPO from a preset or config file, or resume a run from its checkpoint."""
from __future__ import annotations

import argparse
from pathlib import Path

from promedical.errors import UserError


def add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="demo", help="preset name (tiny, demo, ...) or a YAML file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config value, e.g. --set rollout.steps=10 (repeatable)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="run GRPO training")
    add_config_args(p)
    p.add_argument("--run-dir", default=None, help="run directory (default: runs/<preset>-<time>)")
    p.add_argument("--resume", metavar="RUN_DIR", default=None,
                   help="continue RUN_DIR from its latest checkpoint, with the config it was started with")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from promedical.deploy.config import load_config
    from promedical.deploy.run import default_run_dir, train

    if args.resume:
        run_dir = Path(args.resume)
        if not (run_dir / "config.yaml").is_file():
            raise UserError(f"--resume {run_dir}: no config.yaml there; give the directory of an earlier run")
        cfg = load_config(str(run_dir / "config.yaml"), args.overrides)
        root = train(cfg, run_dir, resume=True)
    else:
        cfg = load_config(args.config, args.overrides)
        run_dir = Path(args.run_dir or cfg.run.run_dir or default_run_dir(cfg))
        root = train(cfg, run_dir)
    print(f"run directory: {root}")
    return 0
