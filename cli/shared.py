"""What several commands share: the config and cluster-address flags, shipped data paths, checked saving."""
from __future__ import annotations

import argparse
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parents[1] / "data"     # the package's shipped data/


def add_config_args(p: argparse.ArgumentParser) -> None:
    """--config PRESET_OR_YAML and repeatable --set KEY=VALUE (train, plan, submit)."""
    p.add_argument("--config", default="demo", help="preset name (tiny, demo, ...) or a YAML file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config value, e.g. --set rollout.steps=10 (repeatable)")


def add_address_arg(p: argparse.ArgumentParser) -> None:
    """--address: the Ray dashboard URL of a cluster's job server (submit, status, logs, stop, metrics)."""
    p.add_argument("--address", default=None,
                   help="Ray dashboard URL (default: RAY_ADDRESS if it is a URL, else http://127.0.0.1:8265)")


def add_ray_address_arg(p: argparse.ArgumentParser) -> None:
    """--address: the Ray cluster a command runs its actors on (eval, serve-rm)."""
    p.add_argument("--address", default="", help="Ray cluster address, or 'auto' (default: a private local Ray)")


def builtin_path(name: str) -> Path:
    """A data file path; builtin:NAME is data/NAME.jsonl shipped with the package."""
    if name.startswith("builtin:"):
        return DATA_DIR / f"{name.split(':', 1)[1]}.jsonl"
    return Path(name)


def save_checked(records, output: str) -> None:
    """Write rubric records to `output` after the reader's own checks; nothing is written if one fails."""
    from promedical.errors import UserError
    from promedical.reward.rubric_io import check_records, save_records

    problems = check_records(records)
    if problems:
        raise UserError(f"{problems[0]} ({len(problems)} problem(s); nothing written to {output})")
    save_records(records, output)
