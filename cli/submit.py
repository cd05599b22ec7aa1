"""`promedical submit`: run training as a Ray job on a cluster, with the config resolved and checked here."""
from __future__ import annotations

import argparse

from promedical.cli.shared import add_address_arg, add_config_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("submit", help="submit GRPO training as a Ray job")
    add_config_args(p)
    add_address_arg(p)
    p.add_argument("--run-dir", default=None,
                   help="run directory on the cluster (default: ~/promedical-runs/<job id>)")
    p.set_defaults(func=run)


def resolve(config: str, overrides: list[str]):
    """Load and validate the config locally; the job's driver joins the cluster (run.address=auto)."""
    from promedical.deploy.config import load_config
    from promedical.deploy.run import prompts_path

    if not any(item.split("=", 1)[0].strip() == "run.address" for item in overrides):
        overrides = [*overrides, "run.address=auto"]
    cfg = load_config(config, overrides)
    if cfg.data.prompts.startswith("builtin:"):
        prompts_path(cfg.data.prompts)
    return cfg


def run(args: argparse.Namespace) -> int:
    from promedical.deploy import jobs
    from promedical.deploy.config import dump_config

    cfg = resolve(args.config, args.overrides)
    job_id, url, run_dir = jobs.submit(args.address, dump_config(cfg), cfg.preset, args.run_dir)
    where = f" --address {url}"
    print(job_id)
    print(f"submitted to {url}; run directory on the cluster: {run_dir}\n"
          f"  follow metrics: promedical metrics {job_id} --follow{where}\n"
          f"  follow logs:    promedical logs {job_id} --follow{where}\n"
          f"  status / stop:  promedical status {job_id}{where}  |  promedical stop {job_id}{where}")
    return 0
