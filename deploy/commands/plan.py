"""`promedical plan`: print where each actor replica would go, for a running or a described cluster."""
from __future__ import annotations

import argparse
import os

from promedical.deploy.commands.train import add_config_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="show the placement plan (role, replica, node, bundle, resources); "
                                    "starts no actor")
    add_config_args(p)
    where = p.add_mutually_exclusive_group()
    where.add_argument("--address", default=None,
                       help="plan against the free resources of a running Ray cluster (e.g. auto, HOST:6379)")
    where.add_argument("--cluster", default=None, metavar="NxG",
                       help="plan for a described cluster: N nodes with G GPUs each, e.g. 2x8")
    p.add_argument("--node-cpus", type=float, default=0.0,
                   help="CPUs per described node (default: 16 per GPU, at least 16)")
    p.add_argument("--node-memory-gib", type=float, default=0.0,
                   help="memory per described node in GiB (default: 128 per GPU, at least 128)")
    p.set_defaults(func=run)


def _this_machine() -> list:
    """This machine as one node: its cores and memory, GPUs counted from /dev/nvidia* (no CUDA import)."""
    from promedical.deploy.placement import GIB, Node

    gpus = sum(1 for name in os.listdir("/dev") if name.startswith("nvidia") and name[6:].isdigit()) \
        if os.path.isdir("/dev") else 0
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
    return [Node("localhost", float(os.cpu_count() or 1), memory, [1.0] * gpus)]


def _live(address: str) -> list:
    import ray
    from promedical.deploy.placement import live_nodes
    from promedical.errors import UserError

    if ray.is_initialized():   # called from a driver already connected (tests, notebooks): use that
        return live_nodes()
    try:
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise UserError(f"--address {address}: cannot connect to Ray ({exc}); start the cluster or fix the "
                        f"address") from None
    try:
        return live_nodes()
    finally:
        ray.shutdown()


def run(args: argparse.Namespace) -> int:
    from promedical.deploy.config import load_config
    from promedical.deploy.placement import described_cluster, fit, make_plan, render

    cfg = load_config(args.config, args.overrides)
    plan = make_plan(cfg.placement, cfg.generator.replicas)
    if args.cluster:
        nodes = described_cluster(args.cluster, args.node_cpus, args.node_memory_gib)
        where = f"a described cluster {args.cluster} ({nodes[0].describe().split(': ', 1)[1]} per node)"
    elif args.address:
        nodes, where = _live(args.address), f"the Ray cluster at {args.address} (free resources)"
    else:
        nodes, where = _this_machine(), "this machine"
    print(render(plan, fit(plan, nodes, where)))
    print(f"on {where}")
    return 0
