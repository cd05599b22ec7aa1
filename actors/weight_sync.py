"""Policy -> generator weight sync behind one versioned interface: object store, collective, CUDA IPC.

Every method has the same two halves: `start(version)` queues version `version` on every generator
(each applies it between requests, since a generator actor runs one call at a time) and returns a
`PendingSync`; `wait(pending, timeout_s)` blocks until all generators hold it or fails within
`timeout_s` with a `WeightSyncTimeout` naming the replicas that did not answer. It never hangs.

    object_store  policy exports CPU tensors once into Ray's object store; every generator reads them
    collective    policy rank 0 broadcasts bucketed weights to every generator's vLLM worker over its
                  own torch.distributed group (actors/sync_collective.py): gloo on CPU, NCCL on GPU
                  (`nccl` is its GPU name); ZeRO-3 partitions gathered one bucket at a time
    cuda_ipc      colocated on GPU: policy shares CUDA IPC handles of a staging copy of its weights,
                  so the next train step never writes what a generator reads (actors/sync_ipc.py)

The versions are the generator group's (actors/groups.py GeneratorGroup): `Syncer` records the version
every method delivered, and a generator lost during a sync (or replaced since) is given its version
through the object store (`GeneratorGroup.load`: an object-store export, or a version the policy
keeps for the collective and CUDA-IPC methods); the collective group then meets again under a new name.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

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
    senders: list[ray.ObjectRef] = field(default_factory=list)   # the policy's half, where it runs apart
    handles: list[Any] = field(default_factory=list)   # the generator actors the loads went to
    started_at: float = field(default_factory=time.perf_counter)


class WeightSync(Protocol):
    method: str
    generators: Any

    def start(self, version: int) -> PendingSync: ...


def wait(pending: PendingSync, timeout_s: float) -> float:
    """Block until every generator holds `pending.version`; the slowest load's seconds.

    Raises WeightSyncTimeout (queued loads cancelled) when some replica has not answered within
    `timeout_s`, and WeightSyncError when a replica or the policy failed.
    """
    named = {f"generator replica {i}": ref for i, ref in enumerate(pending.refs)}
    named.update({f"policy rank {k} (sender)": ref for k, ref in enumerate(pending.senders)})
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
        if ref not in pending.senders:
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
    """The loop's side of a weight sync: one method, one timeout (`generator.sync_timeout_s`).

    Under every method, a generator that died or hung during a sync is replaced and given the version
    (when its group heals); a generator whose collective broke because another member was lost is given
    it too. `grace_s`: after a failed collective sync, how long members blocked on a lost peer have to
    fail on their own before they count as hung.
    """

    method: WeightSync
    timeout_s: float
    grace_s: float = 30.0

    def start(self, version: int) -> PendingSync:
        pending = self.method.start(version)
        self.method.generators.version = version      # the latest version queued on the replicas
        return pending

    def wait(self, pending: PendingSync) -> float:
        """The slowest load's seconds; afterwards every replica holds `pending.version`."""
        generators = self.method.generators
        try:
            seconds = wait(pending, self.timeout_s)
        except WeightSyncError:
            if getattr(generators, "healing", None) is None:
                raise
            seconds = self._heal(pending, generators)
            getattr(self.method, "reform", lambda: None)()
        generators.delivered(pending.version)
        return seconds

    def _heal(self, pending: PendingSync, generators: Any) -> float:
        if pending.senders:   # the policy's half must end first: the version it keeps is what a generator gets
            every = pending.refs + pending.senders
            ray.wait(every, num_returns=len(every), timeout=self.grace_s)
            for k, ref in enumerate(pending.senders):
                try:
                    ray.get(ref, timeout=0)
                except ray.exceptions.RayTaskError:
                    pass      # its broadcast broke when a generator was lost; the version was kept
                except ray.exceptions.RayError as exc:
                    raise WeightSyncError(f"{pending.method} weight sync to version {pending.version}: policy rank "
                                          f"{k} was lost or did not answer ({type(exc).__name__})") from exc
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
                except ray.exceptions.RayTaskError:
                    if not pending.senders:
                        raise         # the load itself failed
                    cause = ""        # alive: its group broke when another member was lost
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


# ----------------------------------------------------------------------------- collective (gloo / NCCL)


@dataclass
class CollectiveSync:
    """Policy rank 0 broadcasts bucketed weights to every generator's vLLM worker over one group
    (actors/sync_collective.py): gloo on CPU, NCCL on GPU, the same code. Under ZeRO-3 every rank joins
    each bucket's gather. Nothing passes through the object store, except a kept version handed to a
    replaced generator; a changed membership (a replaced generator) meets under a new group name.
    """

    policy: Any              # PolicyGroup; rank 0 sends
    generators: Any          # GeneratorGroup
    rendezvous: Any          # sync_collective.Rendezvous of epoch 0 (world size 1 + generators)
    bucket_bytes: int = 64 * 2**20
    dtype: str = "float32"   # what travels: the generators' dtype
    keep_versions: int = 0   # versions rank 0 keeps in host memory for replaced generators (0: none)
    metas_timeout_s: float = 60.0
    method: str = "collective"
    _plan: Any = None
    _members: list = field(default_factory=list)
    _epoch: int = 0

    def start(self, version: int) -> PendingSync:
        from dataclasses import replace

        from promedical.actors.sync_collective import CollectivePayload, plan_buckets, policy_send, weight_metas

        ranks = self.policy.handles
        if self._plan is None:   # shapes never change within a run: ask once
            metas = ray.get(ranks[0].__ray_call__.remote(weight_metas), timeout=self.metas_timeout_s)
            self._plan = plan_buckets(metas, self.bucket_bytes, self.dtype)
        handles = list(self.generators.handles)
        if handles != self._members:            # first sync, or a generator replaced: a fresh rendezvous
            self._epoch += bool(self._members)
            self._members = handles
        base = self.rendezvous.name.rpartition("-e")[0]
        spec = replace(self.rendezvous, name=f"{base}-e{self._epoch}")
        senders = [h.__ray_call__.remote(policy_send, spec if k == 0 else None, self._plan, version,
                                         self.keep_versions)
                   for k, h in enumerate(ranks if self.policy.zero_stage == 3 else ranks[:1])]
        loads = [g.load_weights.remote(version, CollectivePayload(spec, i + 1, self._plan, version))
                 for i, g in enumerate(handles)]
        return PendingSync(version, loads, self.method, senders=senders, handles=handles)

    def reform(self) -> None:
        """After a failed sync: the next one meets under a new group name, whoever the members are."""
        self._members = []
        self._epoch += 1

    def kept(self, version: int) -> Any:
        """Ref of a version rank 0 keeps, as [(name, CPU tensor)] through the object store."""
        from promedical.actors.sync_collective import policy_snapshot
        return self.policy.handles[0].__ray_call__.remote(policy_snapshot, version)

    @property
    def object_store_bytes(self) -> int:
        """Bytes a sync puts through the object store: none (the payload is a few kB, sent inline)."""
        return 0


# ----------------------------------------------------------------------------- CUDA IPC


@dataclass
class CudaIpcSync:
    """Colocated on GPU: generators map a staged copy of the policy's tensors through CUDA IPC handles.

    Generator i maps the tensors of policy rank i mod N, the rank that shares its bundle (and GPU)
    when both roles have N replicas colocated; a device mismatch fails with a clear error.
    """

    policy: Any          # PolicyGroup (ZeRO stage < 3: each rank holds whole tensors)
    generators: Any      # GeneratorGroup
    keep_versions: int = 0
    method: str = "cuda_ipc"

    def start(self, version: int) -> PendingSync:
        from promedical.actors.sync_ipc import ipc_share

        ranks = self.policy.handles
        payloads = [h.__ray_call__.remote(ipc_share, version, self.keep_versions if k == 0 else 0)
                    for k, h in enumerate(ranks)]
        handles = list(self.generators.handles)
        return PendingSync(version, [g.load_weights.remote(version, payloads[i % len(ranks)])
                                     for i, g in enumerate(handles)], self.method, handles=handles)

    def kept(self, version: int) -> Any:
        """Ref of a version rank 0 keeps in host memory, as [(name, CPU tensor)] through the object store."""
        from promedical.actors.sync_collective import policy_snapshot
        return self.policy.handles[0].__ray_call__.remote(policy_snapshot, version)


SYNC_METHODS = {"object_store": ObjectStoreSync, "collective": CollectiveSync, "nccl": CollectiveSync,
                "cuda_ipc": CudaIpcSync}


def choose_method(requested: str, *, cuda: bool, generator_shares_policy_gpu: bool, zero_stage: int = 0,
                  generators_share_gpus: bool = False, tensor_parallel_size: int = 1, adapters: bool = False) -> str:
    """`placement.weight_sync`; auto picks by device and placement (deploy/sync_plan.py gives the facts):

        object_store  on CPU (the path the whole CPU suite runs; gloo measured 1.1-1.6x faster per sync,
                      README, but auto was not switched untested);
                      LoRA adapters; tensor-parallel generators; when two NCCL ranks could share a GPU
        cuda_ipc      each generator on its policy rank's GPU (colocated, one GPU per bundle), ZeRO < 3
        collective    on GPUs otherwise: split placement, and ZeRO-3 (each bucket gathered, then broadcast)
    """
    if requested != "auto":
        return requested
    if adapters or tensor_parallel_size > 1 or not cuda:
        return "object_store"
    if generator_shares_policy_gpu:
        return "cuda_ipc" if zero_stage < 3 else "object_store"
    return "object_store" if generators_share_gpus else "collective"
