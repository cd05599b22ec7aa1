"""Placement: which resources each role's replicas take, and which roles share bundles.

Placement is data made here and handed to actor construction; no actor knows whether it is colocated.
    colocated  every role's replicas share one set of bundles (time-sharing the same devices)
    split      each role gets bundles of its own
    mapping    roles named in `placement.groups` with the same group name share bundles
"""
from __future__ import annotations

from dataclasses import dataclass

STRATEGIES = ("colocated", "split", "mapping")
ROLES = ("policy", "reference", "reward", "generator")


@dataclass(frozen=True)
class ActorSlot:
    """Ray options for one actor replica."""

    role: str
    replica: int
    num_cpus: float
    num_gpus: float
    memory_bytes: int


def actor_slots(roles: dict, generator_replicas: int) -> list[ActorSlot]:
    """One slot per replica of each role, resources from `placement.roles.<role>`."""
    slots = []
    for role in ROLES:
        res = roles[role]
        count = generator_replicas if role == "generator" else res.replicas
        for k in range(count):
            slots.append(ActorSlot(role=role, replica=k, num_cpus=res.num_cpus, num_gpus=res.num_gpus,
                                   memory_bytes=int(res.memory_gib * 2**30)))
    return slots
