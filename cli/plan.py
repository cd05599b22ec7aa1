"""`promedical plan`: print where each actor replica would go, for a running or a described cluster."""
from __future__ import annotations

import argparse

from promedical.cli.shared import add_config_args
from promedical.deploy.machine import check_plan, gpu_memory_gib, live_nodes_at, this_machine


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
    p.add_argument("--gpu-memory-gib", type=float, default=0.0,
                   help="memory per GPU in GiB for the memory estimate (default: this machine's GPUs "
                        "when it has some, else 80, an 80-GB-class GPU)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from promedical.deploy.config import load_config
    from promedical.deploy.gpu_fit import DEFAULT_GPU_MEMORY_GIB
    from promedical.deploy.placement import described_cluster

    cfg = load_config(args.config, args.overrides)
    gpu_gib = args.gpu_memory_gib or DEFAULT_GPU_MEMORY_GIB
    if args.cluster:
        nodes = described_cluster(args.cluster, args.node_cpus, args.node_memory_gib)
        where = f"a described cluster {args.cluster} ({nodes[0].describe().split(': ', 1)[1]} per node)"
    elif args.address:
        nodes, where = live_nodes_at(args.address), f"the Ray cluster at {args.address} (free resources)"
    else:
        nodes, where = this_machine(), "this machine"
        gpu_gib = args.gpu_memory_gib or gpu_memory_gib()
    placement, memory = check_plan(cfg, nodes, where, gpu_gib)
    print(placement)
    print(f"on {where}")
    print(memory)
    return 0
