"""Policy -> generator weight sync behind one versioned interface: object store, NCCL broadcast, CUDA IPC.

Every method has the same two halves: `start(version)` queues version `version` on every generator
(each applies it between requests, since a generator actor runs one call at a time) and returns a
`PendingSync`; `wait(pending, timeout_s)` blocks until all generators hold it or fails within
`timeout_s` with a `WeightSyncTimeout` naming the replicas that did not answer. It never hangs.

    object_store  policy exports CPU tensors once into Ray's object store; every generator reads them
                  (CPU, or any placement; what the tiny and demo presets use)
    nccl          split placement on GPU: policy (rank 0) broadcasts each tensor to the generators'
                  vLLM workers (ranks 1..n) over a dedicated NCCL group; no host copy
    cuda_ipc      colocated on GPU: policy shares CUDA IPC handles of its tensors; each generator on
                  the same device maps them without a copy through the host

The GPU methods run their sender half inside the policy actor through Ray's `__ray_call__` and their
receiver half inside the vLLM worker: the payload handed to `Generator.load_weights` is an iterable
that yields (name, tensor) when the worker lists it. They import torch lazily, so this module imports
on CPU; their tests carry the `gpu` marker. They assume one vLLM worker per generator (no tensor
parallelism) and an unpartitioned policy (ZeRO stage < 3).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Protocol

import ray


class WeightSyncError(RuntimeError):
    """A sync that cannot complete: a generator or the policy failed while loading a version."""


class WeightSyncTimeout(WeightSyncError):
    """A sync that did not complete within its timeout."""


@dataclass
class PendingSync:
    """One queued version: a ref per generator replica, each resolving to that replica's load seconds."""

    version: int
    refs: list[ray.ObjectRef]
    method: str = "object_store"
    sender: ray.ObjectRef | None = None   # the policy's half, for methods where it runs apart from the loads
    handles: list[Any] = field(default_factory=list)   # the generator actors the loads went to
    started_at: float = field(default_factory=time.perf_counter)


class WeightSync(Protocol):
    method: str

    def start(self, version: int) -> PendingSync: ...


def wait(pending: PendingSync, timeout_s: float) -> float:
    """Block until every generator holds `pending.version`; the slowest load's seconds.

    Raises WeightSyncTimeout (queued loads cancelled) when some replica has not answered within
    `timeout_s`, and WeightSyncError when a replica or the policy failed.
    """
    named = {f"generator replica {i}": ref for i, ref in enumerate(pending.refs)}
    if pending.sender is not None:
        named["policy (sender)"] = pending.sender
    if not named:
        return 0.0
    refs = list(named.values())
    _, late = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
    if late:
        for ref in late:
            _cancel(ref)
        who = ", ".join(name for name, ref in named.items() if ref in late)
        raise WeightSyncTimeout(
            f"{pending.method} weight sync to version {pending.version} did not finish on {who} "
            f"({len(late)} of {len(refs)}) within generator.sync_timeout_s={timeout_s:g}s; "
            f"check those actors' logs, or raise generator.sync_timeout_s")
    seconds = [0.0]
    for name, ref in named.items():
        try:
            value = ray.get(ref)
        except ray.exceptions.RayError as exc:
            text = str(exc).strip()
            raise WeightSyncError(f"{pending.method} weight sync to version {pending.version} failed on "
                                  f"{name}: {text.splitlines()[-1] if text else type(exc).__name__}") from exc
        if ref is not pending.sender:
            seconds.append(float(value))
    return max(seconds)


def _cancel(ref: ray.ObjectRef) -> None:
    """Cancel a load that has not started; a running one cannot be interrupted, so it is left to finish."""
    try:
        ray.cancel(ref)
    except (TypeError, ValueError, ray.exceptions.RayError):
        pass


@dataclass
class Syncer:
    """The loop's side of a weight sync: one method, one timeout (`generator.sync_timeout_s`)."""

    method: WeightSync
    timeout_s: float

    def start(self, version: int) -> PendingSync:
        return self.method.start(version)

    def wait(self, pending: PendingSync) -> float:
        """The slowest load's seconds. On the object-store path a generator that died or hung during the
        sync is replaced and given the version (when its group heals); any other failure raises."""
        try:
            return wait(pending, self.timeout_s)
        except WeightSyncError:
            generators = self.method.generators
            if self.method.method != "object_store" or getattr(generators, "healing", None) is None:
                raise
        return self._heal(pending, generators)

    def _heal(self, pending: PendingSync, generators: Any) -> float:
        seconds = [0.0]
        for i, ref in enumerate(pending.refs):
            ready, _ = ray.wait([ref], timeout=0)
            cause = "hung"
            if ready:
                try:
                    seconds.append(float(ray.get(ref)))
                    continue
                except (ray.exceptions.ActorDiedError, ray.exceptions.ActorUnavailableError):
                    cause = "died"
            if generators.handles[i] is not pending.handles[i]:
                continue            # replaced since (by a generate call), and given the latest weights then
            seconds.append(generators.heal_sync(i, pending.version, cause, pending.started_at))
        return max(seconds)


@dataclass
class ObjectStoreSync:
    """CPU tensors through Ray's object store: one export, one shared read-only object per version.

    `policy` is the PolicyGroup (every rank joins a ZeRO-3 gather, rank 0's tensors are sent),
    `generators` the GeneratorGroup (its current handles: a replaced replica gets the next version).
    """

    policy: Any
    generators: Any
    method: str = "object_store"

    keep_versions: int = 3    # exports kept for replacing a generator mid-batch: max_staleness + 2

    def start(self, version: int) -> PendingSync:
        weights = self.policy.export_refs()
        self.generators.weights[version] = weights
        for old in [v for v in self.generators.weights if v <= version - self.keep_versions]:
            del self.generators.weights[old]
        self.generators.version = version
        handles = list(self.generators.handles)
        return PendingSync(version, [g.load_weights.remote(version, weights) for g in handles], self.method,
                           handles=handles)


# ----------------------------------------------------------------------------- GPU: shared sender side


def _policy_tensors(policy: Any) -> list[tuple[str, Any]]:
    """(HF name, device tensor) of a live Policy actor instance, without copies."""
    module = policy.engine.module
    return [(k, v.detach()) for k, v in module.state_dict().items()]


def _tensor_metas(policy: Any) -> list[tuple[str, tuple[int, ...], str]]:
    return [(k, tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in _policy_tensors(policy)]


# ----------------------------------------------------------------------------- GPU: NCCL broadcast


@dataclass(frozen=True)
class NcclGroup:
    """Rendezvous of the weight-sync NCCL group: policy is rank 0, generator replica i is rank i + 1."""

    host: str
    port: int
    world_size: int
    name: str = "promedical-weights"


_GROUPS: dict[str, Any] = {}   # per process: the group's NCCL communicator, made on first use


def _nccl_group(spec: NcclGroup, rank: int) -> Any:
    import torch
    import torch.distributed as dist

    if spec.name not in _GROUPS:
        store = dist.TCPStore(spec.host, spec.port, spec.world_size, is_master=rank == 0)
        _GROUPS[spec.name] = dist.ProcessGroupNCCL(dist.PrefixStore(spec.name, store), rank, spec.world_size)
        torch.cuda.synchronize()
    return _GROUPS[spec.name]


def _nccl_send(policy: Any, spec: NcclGroup) -> int:
    """Inside the policy actor: broadcast every tensor from rank 0, in `_tensor_metas` order."""
    group = _nccl_group(spec, 0)
    tensors = _policy_tensors(policy)
    for _, tensor in tensors:
        group.broadcast([tensor.contiguous()], 0).wait()
    return len(tensors)


@dataclass(frozen=True)
class NcclPayload:
    """What a generator's vLLM worker iterates to receive one version over NCCL."""

    spec: NcclGroup
    rank: int
    metas: tuple[tuple[str, tuple[int, ...], str], ...]

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        import torch

        group = _nccl_group(self.spec, self.rank)
        for name, shape, dtype in self.metas:
            buffer = torch.empty(shape, dtype=getattr(torch, dtype), device="cuda")
            group.broadcast([buffer], 0).wait()
            yield name, buffer


@dataclass
class NcclBroadcastSync:
    """Split placement on GPU: one NCCL broadcast per tensor from the policy to every generator."""

    policy: Any          # PolicyGroup; rank 0 sends
    generators: Any      # GeneratorGroup
    spec: NcclGroup
    metas_timeout_s: float = 60.0
    method: str = "nccl"
    _metas: tuple = ()

    def start(self, version: int) -> PendingSync:
        sender = self.policy.handles[0]
        if not self._metas:   # shapes never change within a run: ask once
            self._metas = tuple(ray.get(sender.__ray_call__.remote(_tensor_metas), timeout=self.metas_timeout_s))
        sent = sender.__ray_call__.remote(_nccl_send, self.spec)
        loads = [g.load_weights.remote(version, NcclPayload(self.spec, i + 1, self._metas))
                 for i, g in enumerate(self.generators.handles)]
        return PendingSync(version, loads, self.method, sender=sent)


# ----------------------------------------------------------------------------- GPU: CUDA IPC

_IPC_KEEPALIVE: list[Any] = []   # in the policy process: tensors whose handles are out, kept one version


def _device_uuid(index: int) -> str:
    import torch
    return str(torch.cuda.get_device_properties(index).uuid)


def _ipc_share(policy: Any) -> "IpcPayload":
    """Inside the policy actor: CUDA IPC handles of every tensor, keyed by physical device uuid."""
    from torch.multiprocessing.reductions import reduce_tensor

    tensors = [(k, v.contiguous()) for k, v in _policy_tensors(policy)]
    _IPC_KEEPALIVE[:] = tensors
    device = tensors[0][1].device.index if tensors else 0
    return IpcPayload(_device_uuid(device), tuple((k, reduce_tensor(v)) for k, v in tensors))


@dataclass(frozen=True)
class IpcPayload:
    """What a colocated generator's vLLM worker iterates to map one version's tensors in place."""

    device_uuid: str
    handles: tuple[tuple[str, Any], ...]   # (name, (rebuild_fn, args)) from torch's reduce_tensor

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        import torch

        here = torch.cuda.current_device()
        if _device_uuid(here) != self.device_uuid:
            raise WeightSyncError(f"cuda_ipc sync: policy tensors live on GPU {self.device_uuid} but this "
                                  f"generator runs on {_device_uuid(here)}; use placement.weight_sync=nccl "
                                  f"unless policy and generator are colocated")
        for name, (rebuild, args) in self.handles:
            args = list(args)
            args[6] = here   # device index as this process numbers the same physical GPU
            yield name, rebuild(*args)


@dataclass
class CudaIpcSync:
    """Colocated on GPU: generators map the policy's tensors through CUDA IPC handles, no host copy.

    Generator i maps the tensors of policy rank i mod N, the rank that shares its bundle (and GPU)
    when both roles have N replicas colocated; a device mismatch fails with a clear error.
    """

    policy: Any          # PolicyGroup
    generators: Any      # GeneratorGroup
    method: str = "cuda_ipc"

    def start(self, version: int) -> PendingSync:
        ranks = self.policy.handles
        payloads = [h.__ray_call__.remote(_ipc_share) for h in ranks]
        return PendingSync(version, [g.load_weights.remote(version, payloads[i % len(ranks)])
                                     for i, g in enumerate(self.generators.handles)], self.method)


SYNC_METHODS = {"object_store": ObjectStoreSync, "nccl": NcclBroadcastSync, "cuda_ipc": CudaIpcSync}


def choose_method(requested: str, *, cuda: bool, generator_shares_policy_gpu: bool, zero_stage: int = 0,
                  generators_share_gpus: bool = False) -> str:
    """`placement.weight_sync`; auto picks by device and placement:

        object_store  on CPU; under ZeRO-3 (only it gathers the partitions); when generators share GPUs
                      (one NCCL group cannot hold two ranks on one GPU)
        cuda_ipc      each generator on its policy rank's GPU (colocated, one GPU per bundle)
        nccl          otherwise
    """
    if requested != "auto":
        return requested
    if not cuda or zero_stage == 3:
        return "object_store"
    if generator_shares_policy_gpu:
        return "cuda_ipc"
    return "object_store" if generators_share_gpus else "nccl"
