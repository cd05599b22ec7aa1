"""`promedical serve-rm`: the reward model behind OpenRLHF's remote reward-model HTTP protocol, on Ray Serve."""
from __future__ import annotations

import argparse
from dataclasses import fields

from promedical.cli.shared import add_ray_address_arg
from promedical.reward.aggregate import RewardShape


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve-rm", help="serve rubric rewards over HTTP (OpenRLHF --remote_rm_url protocol)")
    p.add_argument("--rubrics", default="data/medical.jsonl", help="rubric file (JSONL/Parquet) the prompts come from")
    p.add_argument("--grader", default="trained", choices=("rule", "similarity", "trained"))
    p.add_argument("--model", default="minilm-ecir", help="model name or checkpoint dir (not for --grader rule)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
    for f in fields(RewardShape):                  # every reward-shape field, as reward.* has it in a config
        flag, default = f"--{f.name.replace('_', '-')}", getattr(RewardShape, f.name)
        if isinstance(default, tuple):
            p.add_argument(flag, type=float, nargs=len(default), default=list(default), metavar="W")
        else:
            p.add_argument(flag, type=float, default=default)
    p.add_argument("--aggregator", default="promedical")
    p.add_argument("--batch-size", type=int, default=64, help="(response, criterion) triples per forward pass")
    p.add_argument("--max-length", type=int, default=192)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--dtype", choices=("auto", "float32", "bfloat16"), default="auto",
                   help="trained grader weights (auto: bf16 on GPU, fp32 on CPU)")
    p.add_argument("--replicas", type=int, default=1, help="Ray Serve replicas, each with its own reward model")
    p.add_argument("--replica-cpus", type=float, default=1.0, help="CPUs Ray reserves per replica")
    p.add_argument("--max-batch-requests", type=int, default=32,
                   help="concurrent requests a replica scores in one call")
    p.add_argument("--batch-wait-ms", type=float, default=10.0,
                   help="how long a replica waits for more requests before scoring")
    p.add_argument("--timeout-s", type=float, default=60.0, help="a request not scored by then gets HTTP 504")
    add_ray_address_arg(p)
    p.set_defaults(func=run)


def settings(args: argparse.Namespace):
    from promedical.deploy.reward_serve import ServeSettings
    from promedical.errors import UserError

    for key in ("replicas", "max_batch_requests"):
        if getattr(args, key) < 1:
            raise UserError(f"--{key.replace('_', '-')} {getattr(args, key)}: must be >= 1")
    if args.timeout_s <= 0 or args.batch_wait_ms < 0 or args.replica_cpus < 0:
        raise UserError("--timeout-s must be > 0, --batch-wait-ms and --replica-cpus >= 0")
    return ServeSettings(replicas=args.replicas, replica_cpus=args.replica_cpus,
                         max_batch_requests=args.max_batch_requests, batch_wait_s=args.batch_wait_ms / 1000,
                         timeout_s=args.timeout_s)


def run(args: argparse.Namespace) -> int:
    import time

    from promedical.deploy import reward_serve
    from promedical.reward.rubric_io import load_records

    rubrics = {r.prompt_id: r for r in load_records(args.rubrics)}      # bad input fails before Ray starts
    spec = reward_serve.ScorerSpec.of(args)
    reward_serve.check_rubrics_fit(spec, rubrics)
    url = reward_serve.start(spec, args.rubrics, settings(args), args.host, args.port, args.address)
    print(f"serving {len(rubrics)} rubrics at {url} with {args.replicas} replica(s); "
          f"health: GET {url.rsplit('/', 1)[0]}/health (Ctrl-C stops)", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        reward_serve.stop()
