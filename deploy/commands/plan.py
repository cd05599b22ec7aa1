"""`promedical plan`: print where each actor replica would go, for a running or a described cluster."""
from __future__ import annotations

import argparse
import os

from promedical.deploy.commands.shared import add_config_args


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


def this_machine() -> list:
    """This machine as one node: its cores and memory, GPUs counted from /dev/nvidia* (no CUDA import)."""
    from promedical.deploy.placement import GIB, Node

    gpus = sum(1 for name in os.listdir("/dev") if name.startswith("nvidia") and name[6:].isdigit()) \
        if os.path.isdir("/dev") else 0
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
    return [Node("localhost", float(os.cpu_count() or 1), memory, [1.0] * gpus)]


def _live(address: str) -> list:
    import ray
    from promedical.deploy.placement_ray import live_nodes
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


def gpu_memory_gib() -> float:
    """Memory of this machine's first GPU (nvidia-smi, no CUDA import), else the 80-GB-class default."""
    import shutil
    import subprocess

    from promedical.deploy.gpu_fit import DEFAULT_GPU_MEMORY_GIB

    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=30).stdout.split()
            return float(out[0]) / 1024 if out else DEFAULT_GPU_MEMORY_GIB
        except (OSError, subprocess.SubprocessError, ValueError):
            pass
    return DEFAULT_GPU_MEMORY_GIB


def check_plan(cfg, nodes: list, where: str, gpu_gib: float) -> tuple[str, str]:
    """(placement table, per-GPU memory table) of `cfg` on `nodes`; UserError (one line) if it cannot fit."""
    from promedical.deploy.config import plan_roles
    from promedical.deploy.gpu_fit import check_memory, check_total, ranks_line
    from promedical.deploy.placement import fit, make_plan, render

    plan = make_plan(cfg.placement, cfg.generator.replicas, plan_roles(cfg))
    check_total(cfg, plan, nodes, where, gpu_gib)
    assignment = fit(plan, nodes, where)
    memory = check_memory(cfg, plan, assignment, nodes, gpu_gib)
    return render(plan, assignment) + "\n" + ranks_line(cfg, plan), memory


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
        nodes, where = _live(args.address), f"the Ray cluster at {args.address} (free resources)"
    else:
        nodes, where = this_machine(), "this machine"
        gpu_gib = args.gpu_memory_gib or gpu_memory_gib()
    placement, memory = check_plan(cfg, nodes, where, gpu_gib)
    print(placement)
    print(f"on {where}")
    print(memory)
    return 0
