"""Where a run goes: this machine as a node, a running cluster's free nodes, and the check that a plan fits.

Used by `promedical plan` and by `promedical train` (a local run refuses at once a plan this machine
cannot hold).
"""
from __future__ import annotations

import os


def this_machine() -> list:
    """This machine as one node: its cores and memory, GPUs counted from /dev/nvidia* (no CUDA import)."""
    from promedical.deploy.placement import GIB, Node

    gpus = sum(1 for name in os.listdir("/dev") if name.startswith("nvidia") and name[6:].isdigit()) \
        if os.path.isdir("/dev") else 0
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
    return [Node("localhost", float(os.cpu_count() or 1), memory, [1.0] * gpus)]


def live_nodes_at(address: str) -> list:
    """The free resources of the running Ray cluster at `address` (or the one this driver is connected to)."""
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
