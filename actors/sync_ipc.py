"""CUDA IPC weight sync for a generator on its policy rank's GPU, without the read/write race.

The policy shares handles of a *staging copy* of its weights (in the generators' dtype), never of
the live parameters: the next train step writes the parameters, not the copy. The copy is made and
the stream synchronised before any handle leaves the process (the fence), and it lives until the
next version is shared; the loop waits for version v's sync before starting v + 1, so by then every
generator has copied v into its own weights. The payload carries its version, and the generator
refuses a payload whose version is not the one it was asked to load.

    share(named, version) -> IpcPayload     pure torch (benchmarks/gpu_check.py maps it in another process)
    ipc_share(policy, version, keep)        inside a Policy actor, through `__ray_call__`
    (the method, CudaIpcSync, is in actors/weight_sync.py)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

_STAGED: dict[int, list[tuple[str, Any]]] = {}   # in the policy process: version -> staging copies shared


def _device_uuid(index: int) -> str:
    import torch
    return str(torch.cuda.get_device_properties(index).uuid)


@dataclass(frozen=True)
class IpcPayload:
    """What a colocated generator's vLLM worker iterates to map one version's tensors."""

    device_uuid: str
    version: int
    handles: tuple[tuple[str, Any], ...]   # (name, (rebuild_fn, args)) from torch's reduce_tensor

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        import torch

        here = torch.cuda.current_device()
        if _device_uuid(here) != self.device_uuid:
            raise RuntimeError(f"cuda_ipc sync: policy tensors live on GPU {self.device_uuid} but this "
                               f"generator runs on {_device_uuid(here)}; use placement.weight_sync=collective "
                               f"unless policy and generator are colocated")
        for name, (rebuild, args) in self.handles:
            args = list(args)
            args[6] = here   # device index as this process numbers the same physical GPU
            yield name, rebuild(*args)


def share(named: list[tuple[str, Any]], version: int, dtype: Any = None) -> IpcPayload:
    """Stage a copy of `named` CUDA tensors (cast to `dtype`), fence, and return handles to the copy.

    The copy of the previous version is released (its consumers finished loading it before this call).
    """
    import torch
    from torch.multiprocessing.reductions import reduce_tensor

    staged = [(k, v.detach().to(dtype=dtype or v.dtype, copy=True)) for k, v in named]
    torch.cuda.current_stream().synchronize()     # the fence: the copy is complete before a handle is out
    _STAGED.clear()
    _STAGED[version] = staged
    device = staged[0][1].device.index if staged else 0
    return IpcPayload(_device_uuid(device), version, tuple((k, reduce_tensor(v)) for k, v in staged))


def ipc_share(policy: Any, version: int, keep: int = 0) -> IpcPayload:
    """Inside a Policy actor: share `version`; with `keep`, also keep it in host memory for healing."""
    from promedical.actors.sync_collective import keep_snapshot, named_weights

    payload = share(named_weights(policy.engine.module), version, getattr(policy, "export_dtype", None))
    if keep:
        keep_snapshot(version, [(k, v.to("cpu")) for k, v in _STAGED[version]], keep)
    return payload
