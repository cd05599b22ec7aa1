"""Collective weight sync: one torch.distributed group from the policy to every generator's vLLM worker.

The same code runs on CPU (gloo) and GPU (NCCL): only `Rendezvous.backend` and the buffers' device
differ. Rank 0 is the policy (rank 0's actor), generator replica i is rank i + 1. The group is made
from its own TCPStore (served by the policy's rank-0 process) and is independent of the policy's
DeepSpeed group; a group name carries an epoch, so after a generator is replaced the members meet
again under a new name (a fresh rendezvous) on the same store.

Weights travel in buckets (`plan_buckets`): each bucket is one flat buffer of whole tensors, at
most `bucket_bytes` unless one tensor is larger. Under ZeRO-3 every policy rank gathers one bucket's
partitions at a time (`deepspeed.zero.GatheredParameters`) and rank 0 broadcasts it, so no rank
ever holds more than one bucket of gathered weights beyond its own partition.

The halves, usable without Ray (benchmarks/gpu_check.py calls them in-process):

    plan_buckets(metas, bucket_bytes, dtype) -> BucketPlan     pure: which tensors share a buffer
    join(spec, rank) -> ProcessGroup                           this process's member of the group
    pack(tensors, dtype, device) -> flat; broadcast(group, flat); unpack(flat, bucket) -> [(name, view)]
    CollectivePayload(spec, rank, plan, version)               receiver: iterating it receives a version

With Ray: `policy_send` runs in each policy rank through `__ray_call__`, and `CollectivePayload`
is what `Generator.load_weights` hands to its vLLM worker (actors/vllm_extension.py), which lists
every bucket before reloading, so a transfer broken half-way never leaves half-loaded weights.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Iterator, Sequence

_STORES: dict[tuple[str, int], Any] = {}   # per process: the rendezvous store (server in rank 0's process)
_GROUPS: dict[str, Any] = {}               # per process: group name -> ProcessGroup
_SNAPSHOTS: dict[int, list[tuple[str, Any]]] = {}   # policy rank 0: version -> (name, host tensor)


@dataclass(frozen=True)
class Rendezvous:
    """Where the weight-sync group meets: rank 0's store address, the group's size, name and backend."""

    host: str
    port: int
    world_size: int
    name: str = "promedical-weights-e0"
    backend: str = "gloo"            # gloo (CPU tensors) or nccl (CUDA tensors)
    timeout_s: float = 300.0         # any member not arriving or answering within this fails the sync


@dataclass(frozen=True)
class Bucket:
    """Tensors sent as one flat buffer: (name, shape) in buffer order."""

    entries: tuple[tuple[str, tuple[int, ...]], ...]
    indices: tuple[int, ...]         # positions in the sender's named-weight order

    @property
    def numel(self) -> int:
        return sum(math.prod(shape) for _, shape in self.entries)


@dataclass(frozen=True)
class BucketPlan:
    dtype: str                       # every tensor travels in this dtype (the generators')
    buckets: tuple[Bucket, ...]

    @property
    def nbytes(self) -> int:
        return sum(b.numel for b in self.buckets) * _itemsize(self.dtype)


def _itemsize(dtype: str) -> int:
    return {"float32": 4, "bfloat16": 2, "float16": 2, "float64": 8}[dtype]


def plan_buckets(metas: Sequence[tuple[str, tuple[int, ...]]], bucket_bytes: int, dtype: str) -> BucketPlan:
    """Consecutive tensors grouped into buckets of at most `bucket_bytes` (a larger tensor goes alone)."""
    if bucket_bytes <= 0:
        raise ValueError(f"bucket_bytes={bucket_bytes} must be > 0")
    size, buckets, current, used = _itemsize(dtype), [], [], 0
    for index, (name, shape) in enumerate(metas):
        nbytes = math.prod(shape) * size
        if current and used + nbytes > bucket_bytes:
            buckets.append(current)
            current, used = [], 0
        current.append((index, name, tuple(shape)))
        used += nbytes
    if current:
        buckets.append(current)
    return BucketPlan(dtype, tuple(Bucket(tuple((n, s) for _, n, s in b), tuple(i for i, _, _ in b))
                                   for b in buckets))


# ----------------------------------------------------------------------------- the group


def join(spec: Rendezvous, rank: int) -> Any:
    """This process's member (rank `rank`) of group `spec.name`, made on first use, cached after.

    Joining a new epoch of a group drops this process's older epochs of it.
    """
    if spec.name in _GROUPS:
        return _GROUPS[spec.name]
    import torch.distributed as dist

    base = spec.name.rpartition("-e")[0]
    for old in [n for n in _GROUPS if n.rpartition("-e")[0] == base]:
        del _GROUPS[old]
    timeout = timedelta(seconds=spec.timeout_s)
    key = (spec.host, spec.port)
    if key not in _STORES:
        _STORES[key] = dist.TCPStore(spec.host, spec.port, None, rank == 0, timeout, wait_for_workers=False)
    store = dist.PrefixStore(spec.name, _STORES[key])
    if spec.backend == "nccl":
        options = dist.ProcessGroupNCCL.Options()
        options._timeout = timeout
        group = dist.ProcessGroupNCCL(store, rank, spec.world_size, options)
    else:
        group = dist.ProcessGroupGloo(store, rank, spec.world_size, timeout)
    _GROUPS[spec.name] = group
    return group


def leave(spec: Rendezvous) -> None:
    """Drop this process's member of `spec`'s group; its connections close, so the other members'
    pending operations fail at once instead of waiting out the timeout."""
    import gc

    if _GROUPS.pop(spec.name, None) is not None:
        gc.collect()


def broadcast(group: Any, tensor: Any, root: int = 0) -> None:
    """Broadcast `tensor` in place from `root` over a ProcessGroup made by `join` (blocks until done)."""
    import torch.distributed as dist

    options = dist.BroadcastOptions()
    options.rootRank = root
    options.rootTensor = 0
    group.broadcast([tensor], options).wait()


def pack(tensors: Sequence[Any], dtype: Any, device: Any) -> Any:
    """One flat buffer holding `tensors` in order, cast to `dtype`, on `device` (a new tensor)."""
    import torch

    flat = torch.empty(sum(t.numel() for t in tensors), dtype=dtype, device=device)
    start = 0
    for t in tensors:
        flat[start:start + t.numel()].copy_(t.detach().reshape(-1))
        start += t.numel()
    return flat


def unpack(flat: Any, bucket: Bucket) -> list[tuple[str, Any]]:
    """(name, view of `flat` in the tensor's shape) for every tensor of `bucket`."""
    out, start = [], 0
    for name, shape in bucket.entries:
        n = math.prod(shape)
        out.append((name, flat[start:start + n].view(shape)))
        start += n
    return out


@dataclass(frozen=True)
class CollectivePayload:
    """What a generator's vLLM worker iterates to receive version `version` as rank `rank`."""

    spec: Rendezvous
    rank: int
    plan: BucketPlan
    version: int

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        import torch

        device = torch.device("cuda", torch.cuda.current_device()) if self.spec.backend == "nccl" else "cpu"
        try:
            group = join(self.spec, self.rank)
            for bucket in self.plan.buckets:
                flat = torch.empty(bucket.numel, dtype=getattr(torch, self.plan.dtype), device=device)
                broadcast(group, flat)
                yield from unpack(flat, bucket)
        except RuntimeError:
            leave(self.spec)
            raise


# ----------------------------------------------------------------------------- the policy's half


def named_weights(module: Any) -> list[tuple[str, Any]]:
    """(HF name, parameter or buffer) of every state-dict entry, in state-dict order: the names the
    object store sends, a tied weight under each of its names (vLLM's layer-wise reload wants both)."""
    out = []
    for name in module.state_dict().keys():
        try:
            out.append((name, module.get_parameter(name)))
        except AttributeError:
            out.append((name, module.get_buffer(name)))
    return out


def _shape(tensor: Any) -> tuple[int, ...]:
    return tuple(getattr(tensor, "ds_shape", tensor.shape))   # a ZeRO-3 partition knows its full shape


def weight_metas(policy: Any) -> list[tuple[str, tuple[int, ...]]]:
    """Inside a Policy actor: (name, full shape) of every tensor it sends, in sending order."""
    return [(n, _shape(t)) for n, t in named_weights(policy.engine.module)]


def policy_send(policy: Any, spec: Rendezvous | None, plan: BucketPlan, version: int, keep: int) -> int:
    """Inside each policy rank (all of them under ZeRO-3, else rank 0): gather and send `version`.

    Rank 0 broadcasts every bucket over `spec`'s group; with `keep` > 0 it also keeps the last `keep`
    versions' buckets in host memory, for a replaced generator (`policy_snapshot`). A broken broadcast
    (a generator died) stops the sending, not the gathering, so the other ranks' gathers stay in step
    and the snapshot is whole; the error is raised at the end. Returns the bytes rank 0 sent.
    """
    import contextlib

    import torch

    zero3 = policy.zero_stage == 3
    if zero3:
        import deepspeed
        gathered = lambda ts: deepspeed.zero.GatheredParameters(ts, modifier_rank=None)
    else:
        gathered = lambda ts: contextlib.nullcontext()
    weights = named_weights(policy.engine.module)
    lead = policy.rank == 0
    dtype = getattr(torch, plan.dtype)
    kept, error, sent, group = [], None, 0, None
    if lead and spec is not None:
        try:
            group = join(spec, 0)
        except RuntimeError as exc:      # a member never arrived: still gather and keep the version
            error = exc
    for bucket in plan.buckets:
        tensors = [weights[i][1] for i in bucket.indices]
        unique = list({id(t): t for t in tensors}.values())     # a tied weight is gathered once
        with gathered(unique):
            if not lead:
                continue
            flat = pack(tensors, dtype, tensors[0].device)
        if keep:
            kept.append(flat.to("cpu", copy=True) if flat.device.type != "cpu" else flat)
        if group is not None and error is None:
            try:
                broadcast(group, flat)
                sent += flat.numel() * flat.element_size()
            except RuntimeError as exc:
                error = exc
                leave(spec)
    if lead and keep:
        keep_snapshot(version, [pair for flat, b in zip(kept, plan.buckets) for pair in unpack(flat, b)], keep)
    if error is not None:
        raise RuntimeError(f"collective weight sync to version {version}: broadcast failed: {error}")
    return sent


def keep_snapshot(version: int, named: list[tuple[str, Any]], keep: int) -> None:
    """In the policy's rank-0 process: keep `version`'s host tensors, and only the last `keep` versions."""
    _SNAPSHOTS[version] = named
    for old in [v for v in _SNAPSHOTS if v <= version - keep]:
        del _SNAPSHOTS[old]


def policy_snapshot(policy: Any, version: int) -> list[tuple[str, Any]]:
    """Inside policy rank 0: [(name, CPU tensor)] of a kept version (for the object store)."""
    if version not in _SNAPSHOTS:
        raise RuntimeError(f"weights of version {version} are not kept by the policy (kept: {sorted(_SNAPSHOTS)}); "
                           f"the run resumes from its checkpoint instead")
    return [(name, t.clone()) for name, t in _SNAPSHOTS[version]]   # a view would carry its whole bucket
