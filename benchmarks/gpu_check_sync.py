"""The weight-sync phases of benchmarks/gpu_check.py: a CUDA-IPC payload made in this process and mapped in
another (with the version fence), and the collective sender and receiver halves (actors/sync_collective.py)
in two processes. Children are spawned (a fresh CUDA context each); nothing here imports Ray or vLLM.

    ipc         this process stages and shares version 1 of a policy's weights (actors/sync_ipc.ipc_share),
                then writes the live parameters (as the next train step would) before the child maps the
                handles: the child must read version 1's values. CUDA only; on the CPU the same parent and
                child run with shared-memory CPU tensors (a stand-in: no CUDA IPC handle is made).
    collective  rank 0 here packs and broadcasts every bucket, rank 1 in the child receives them through
                CollectivePayload; nccl when there are 2 GPUs (one rank on each), else gloo. With one GPU,
                the policy's own sender (policy_send, ZeRO-3 gathers included) runs over a 1-rank nccl group.
"""
from __future__ import annotations

import time
from typing import Any

from gpu_check_roles import Phase, sync

CHILD_TIMEOUT_S = 180


def _sums(named) -> dict[str, float]:
    return {name: float(t.double().sum()) for name, t in named}


# ----------------------------------------------------------------------------- CUDA IPC


def _ipc_child(payload: Any, cpu_stand_in: bool, out) -> None:
    """Map the payload (or the stand-in's shared tensors) and answer with its version and checksums."""
    try:
        if cpu_stand_in:
            version, named = payload
        else:
            version, named = payload.version, list(payload)
        out.put(("ok", version, _sums(named)))
    except Exception as exc:    # noqa: BLE001 - reported to the parent as the phase's failure
        out.put(("error", 0, f"{type(exc).__name__}: {exc}"))


def ipc_phase(policy: Any, device, version: int = 1) -> Phase:
    import torch
    import torch.multiprocessing as mp

    from promedical.actors.sync_collective import named_weights
    module = policy.engine.module
    expected = _sums((n, t.detach().to(policy.export_dtype)) for n, t in named_weights(module))
    start = time.perf_counter()
    if device.type == "cuda":
        from promedical.actors.sync_ipc import ipc_share
        payload: Any = ipc_share(policy, version)
        stand_in = False
    else:                        # CPU stand-in: a staged copy in shared memory, same parent/child path
        payload = (version, [(n, t.detach().to(policy.export_dtype, copy=True).share_memory_())
                             for n, t in named_weights(module)])
        stand_in = True
    share_seconds = time.perf_counter() - start
    params = list(module.parameters())
    saved = [p.detach().clone() for p in params]
    with torch.no_grad():        # the next train step writes the live weights before the generator maps them
        for p in params:
            p.add_(1.0)
    sync(device)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    child = ctx.Process(target=_ipc_child, args=(payload, stand_in, out))
    start = time.perf_counter()
    child.start()
    try:
        status, got_version, got = out.get(timeout=CHILD_TIMEOUT_S)
    finally:
        child.join(timeout=30)
        if child.is_alive():
            child.kill()
    map_seconds = time.perf_counter() - start
    with torch.no_grad():
        for p, value in zip(params, saved):
            p.copy_(value)
    if status != "ok":
        return Phase("ipc", map_seconds, ok=False, note=f"child failed: {got}")
    worst = max(abs(got[n] - expected[n]) / max(1.0, abs(expected[n])) for n in expected)
    ok = got_version == version and set(got) == set(expected) and worst < 1e-6
    what = "CPU stand-in (shared memory, no CUDA IPC)" if stand_in else "CUDA IPC handles of a staged copy"
    return Phase("ipc", map_seconds, ok=ok, note=f"{what}: {len(got)} tensors mapped in a child process as version "
                 f"{got_version}, live weights written after sharing, worst relative checksum gap {worst:.1e} "
                 f"(must be ~0: the child read the staged version); share {share_seconds:.3f}s, child start + "
                 f"map {map_seconds:.2f}s")


# ----------------------------------------------------------------------------- collective


def _receiver(spec, plan, version: int, gpu: int | None, out) -> None:
    """Rank 1: receive every bucket through CollectivePayload (what the vLLM worker iterates)."""
    try:
        import torch

        from promedical.actors.sync_collective import CollectivePayload
        if gpu is not None:
            torch.cuda.set_device(gpu)
        named = list(CollectivePayload(spec, 1, plan, version))
        devices = sorted({str(t.device) for _, t in named})
        out.put(("ok", devices, _sums(named)))
    except Exception as exc:    # noqa: BLE001
        out.put(("error", [], f"{type(exc).__name__}: {exc}"))


def collective_phase(policy: Any, device, bucket_mb: float = 64.0, version: int = 1) -> Phase:
    """Two processes: this one is rank 0 (the policy's sender half), a spawned child rank 1."""
    import torch
    import torch.multiprocessing as mp

    from promedical.actors.sync_collective import Rendezvous, broadcast, join, leave, named_weights, pack, \
        plan_buckets, weight_metas
    from promedical.runtime.distributed import free_port

    two_gpus = device.type == "cuda" and torch.cuda.device_count() >= 2
    backend = "nccl" if two_gpus else "gloo"
    dtype_name = str(policy.export_dtype).replace("torch.", "")
    plan = plan_buckets(weight_metas(policy), int(bucket_mb * 2**20), dtype_name)
    weights = named_weights(policy.engine.module)
    expected = _sums((n, t.detach().to(policy.export_dtype)) for n, t in weights)
    spec = Rendezvous("127.0.0.1", free_port(), 2, name="gpu-check-e0", backend=backend, timeout_s=120)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    child = ctx.Process(target=_receiver, args=(spec, plan, version, 1 if two_gpus else None, out))
    child.start()
    try:
        group = join(spec, 0)
        start = time.perf_counter()
        sent = 0
        for bucket in plan.buckets:       # the sender half: pack on the send device, broadcast
            tensors = [weights[i][1] for i in bucket.indices]
            flat = pack(tensors, policy.export_dtype, tensors[0].device if two_gpus else "cpu")
            broadcast(group, flat)
            sent += flat.numel() * flat.element_size()
        sync(device)
        seconds = time.perf_counter() - start
        status, devices, got = out.get(timeout=CHILD_TIMEOUT_S)
    finally:
        leave(spec)
        child.join(timeout=30)
        if child.is_alive():
            child.kill()
    if status != "ok":
        return Phase("collective", ok=False, note=f"receiver failed: {got}")
    worst = max(abs(got[n] - expected[n]) / max(1.0, abs(expected[n])) for n in expected)
    ok = set(got) == set(expected) and worst < 1e-6
    return Phase("collective", seconds, ok=ok, note=f"{backend}, 2 processes ({'one GPU each' if two_gpus else 'host buffers'}): "
                 f"{len(plan.buckets)} buckets, {sent / 2**20:.1f} MiB, {sent / 2**30 / max(seconds, 1e-9):.2f} GiB/s, "
                 f"received on {devices}, worst relative checksum gap {worst:.1e}", figures={"bytes": sent})


def policy_send_phase(policy: Any, device, bucket_mb: float = 64.0, version: int = 1) -> Phase:
    """The policy's own sender (gathers under ZeRO-3, packs on its device, broadcasts, keeps a host
    snapshot) over a 1-rank group: nccl on a GPU, gloo on the CPU. The snapshot must equal export_weights."""
    from promedical.actors.sync_collective import Rendezvous, leave, plan_buckets, policy_send, policy_snapshot, \
        weight_metas
    from promedical.runtime.distributed import free_port

    backend = "nccl" if device.type == "cuda" else "gloo"
    spec = Rendezvous("127.0.0.1", free_port(), 1, name="gpu-check-send-e0", backend=backend, timeout_s=120)
    plan = plan_buckets(weight_metas(policy), int(bucket_mb * 2**20), str(policy.export_dtype).replace("torch.", ""))
    start = time.perf_counter()
    try:
        sent = policy_send(policy, spec, plan, version, keep=1)
        sync(device)
        seconds = time.perf_counter() - start
    finally:
        leave(spec)
    kept = _sums(policy_snapshot(policy, version))
    exported = _sums(policy.export_weights())
    # exported has every state_dict name; the sender sends a tied tensor once, under its parameter name
    worst = max(abs(kept[n] - exported[n]) / max(1.0, abs(exported[n])) for n in kept if n in exported)
    ok = bool(kept) and set(kept) <= set(exported) and worst < 1e-6 and sent > 0
    return Phase(f"policy_send-zero{policy.zero_stage}", seconds, ok=ok, note=f"{backend} 1-rank group: "
                 f"{len(plan.buckets)} buckets, {sent / 2**20:.1f} MiB sent, snapshot vs export_weights worst relative "
                 f"gap {worst:.1e}", figures={"bytes": sent})
