"""Which weight-sync methods a placement plan can use, and the one-line refusals of those it cannot.

Pure: reads the plan of deploy/placement.py. `weight_sync_problems` runs with the config's other checks
(deploy/config.py), so a method the placement cannot carry fails with exit 2 before any actor starts;
`choose` resolves `auto` from the same facts (actors/weight_sync.py choose_method).

    collective  on CPU: gloo, any placement. On GPU (policy and generators with num_gpus > 0) it is NCCL,
                which allows one rank per GPU: policy rank 0 and every generator each on a GPU of its own
    cuda_ipc    each generator on its policy rank's GPU: both in one bundle of at most one GPU; ZeRO < 3
    either      one vLLM worker per generator (generator.tensor_parallel_size=1): each is one rank
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from promedical.deploy.placement import make_plan, role_resources


@dataclass(frozen=True)
class SyncLayout:
    """The facts of a plan that decide the weight-sync method."""

    gpus: bool                 # policy and generators both hold GPUs: a collective is NCCL
    ipc_reason: str            # why a generator cannot map its policy rank's GPU memory ("" when it can)
    nccl_reason: str           # why two NCCL ranks could share a GPU ("" when they cannot)


def sync_layout(placement: Any, generator_replicas: int) -> SyncLayout:
    plan = make_plan(placement, generator_replicas)
    slot = {(s.role, s.replica): s for s in plan.slots}
    pol, gen = role_resources(placement, "policy"), role_resources(placement, "generator")
    ranks = pol.replicas
    ipc = ""
    if not (pol.num_gpus > 0 and gen.num_gpus > 0):
        ipc = "policy and generators hold no GPU (placement.roles.<role>.num_gpus=0)"
    elif generator_replicas > ranks:
        ipc = f"generator.replicas={generator_replicas} exceeds the {ranks} policy ranks whose GPUs they would map"
    else:
        for i in range(generator_replicas):
            g, p = slot[("generator", i)], slot[("policy", i)]
            if (g.group, g.bundle) != (p.group, p.bundle) or plan.bundles[g.group][g.bundle].gpus > 1:
                ipc = f"generator replica {i} is not on policy rank {i}'s GPU (not one bundle of at most 1 GPU)"
                break
    # NCCL ranks: policy rank 0 and every generator. Two share a GPU when they are in one bundle of at
    # most one GPU, or both fractional in one bundle, or in two bundles of under one GPU each (Ray may
    # pack those onto one device)
    ranks0 = [("policy", 0)] + [("generator", i) for i in range(generator_replicas)]
    nccl = ""
    for a, b in [(a, b) for k, a in enumerate(ranks0) for b in ranks0[k + 1:]]:
        sa, sb = slot[a], slot[b]
        ga, gb = plan.bundles[sa.group][sa.bundle].gpus, plan.bundles[sb.group][sb.bundle].gpus
        if (sa.group, sa.bundle) == (sb.group, sb.bundle):
            shared = ga <= 1 or (sa.resources.gpus < 1 and sb.resources.gpus < 1)
        else:
            shared = ga < 1 and gb < 1
        if shared:
            nccl = f"{a[0]} {'rank' if a[0] == 'policy' else 'replica'} {a[1]} and generator replica {b[1]} can share a GPU"
            break
    return SyncLayout(gpus=pol.num_gpus > 0 and gen.num_gpus > 0, ipc_reason=ipc, nccl_reason=nccl)


def weight_sync_problems(placement: Any, generator_replicas: int, *, zero_stage: int,
                         tensor_parallel_size: int) -> list[str]:
    """'key=value: reason; fix' lines for a weight-sync method this placement cannot use."""
    method, out = placement.weight_sync, []
    if not placement.weight_sync_bucket_mb > 0:
        out.append(f"placement.weight_sync_bucket_mb={placement.weight_sync_bucket_mb:g} must be > 0 "
                   f"(MiB per collective broadcast bucket); set e.g. placement.weight_sync_bucket_mb=64")
    if method not in ("collective", "nccl", "cuda_ipc"):
        return out
    if tensor_parallel_size > 1:
        return out + [f"placement.weight_sync={method} with generator.tensor_parallel_size={tensor_parallel_size}: "
                      f"every TP worker of a generator would be one rank; use placement.weight_sync=object_store "
                      f"(or auto), or generator.tensor_parallel_size=1"]
    try:
        layout = sync_layout(placement, generator_replicas)
    except (KeyError, ValueError, TypeError):
        return out                      # the placement itself is wrong: placement_problems says how
    if method == "cuda_ipc" and zero_stage == 3:
        out.append("placement.weight_sync=cuda_ipc shares each policy rank's own tensors, which under "
                   "trainer.zero_stage=3 are partitions; use placement.weight_sync=collective (or auto)")
    elif method == "cuda_ipc" and layout.ipc_reason:
        out.append(f"placement.weight_sync=cuda_ipc needs each generator on its policy rank's GPU, but "
                   f"{layout.ipc_reason}; use placement.weight_sync=collective (or auto)")
    if method == "nccl" and not layout.gpus:
        out.append("placement.weight_sync=nccl needs GPUs for the policy and the generators "
                   "(placement.roles.<role>.num_gpus > 0); on CPU use placement.weight_sync=collective (gloo)")
    elif method in ("collective", "nccl") and layout.gpus and layout.nccl_reason:
        out.append(f"placement.weight_sync={method} on GPUs is NCCL, one rank per GPU, but {layout.nccl_reason}; "
                   f"use placement.weight_sync=cuda_ipc or object_store (or auto), or placement.strategy=split "
                   f"with whole GPUs per generator")
    return out


def choose(placement: Any, generator_replicas: int, *, zero_stage: int, tensor_parallel_size: int,
           adapters: bool) -> str:
    """`placement.weight_sync`, with auto resolved (actors/weight_sync.py choose_method) from this plan."""
    from promedical.actors.weight_sync import choose_method

    layout = sync_layout(placement, generator_replicas)
    return choose_method(placement.weight_sync, cuda=layout.gpus, generator_shares_policy_gpu=not layout.ipc_reason,
                         zero_stage=zero_stage, generators_share_gpus=bool(layout.nccl_reason),
                         tensor_parallel_size=tensor_parallel_size, adapters=adapters)
