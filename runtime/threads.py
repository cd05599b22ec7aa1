"""Intra-op threads of a torch role (policy, reference, reward), from its placement, set explicitly in its actor.

Ray starts an actor with OMP_NUM_THREADS set from its `num_cpus` (at least 1), so a 0.25-CPU actor
left alone computes on one thread however many cores the node has. The driver decides the count
(`role_threads`) and the actor sets it (`apply_threads`):

    trainer.threads > 0       that many threads in every torch role
    0, roles take turns       the node's cores: colocated roles in the synchronous loop
                              (rollout.max_staleness = 0) run their phases one after another
                              (generate; score with reference; train), so each phase may use the node
    0, otherwise              the role's own placement.roles.<role>.num_cpus, at least 1 (split or
                              mapped bundles, or generation overlapping training)
"""
from __future__ import annotations

import os

NODE_CORES = 0          # a count handed to an actor: all cores of the node it runs on


def node_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def role_threads(configured: int, num_cpus: float, takes_turns: bool) -> int:
    """Threads for one role's actor: `configured` if > 0, NODE_CORES when roles take turns, else num_cpus."""
    if configured > 0:
        return configured
    return NODE_CORES if takes_turns else max(1, int(num_cpus))


def apply_threads(threads: int) -> int:
    """Set torch's intra-op threads in this process (NODE_CORES: all of them); returns the count set."""
    import torch

    count = threads if threads > 0 else node_cores()
    torch.set_num_threads(count)
    return count
