"""Placement on the live Ray cluster: its nodes, one placement group per plan group, actors started in
their bundles (and replaced there), and a rendezvous address on a bundle's node. The plan itself is
deploy/placement.py.
"""
from __future__ import annotations

import time
from typing import Any

from promedical.deploy.placement import GIB, ROLES, ActorSlot, Node, Plan, fit, unsatisfiable_message
from promedical.errors import UserError


def live_nodes(free: bool = True) -> list[Node]:
    """Alive nodes of the connected Ray cluster with their free (else total) resources."""
    import ray
    from ray._private.state import available_resources_per_node

    available = available_resources_per_node() if free else {}
    nodes = []
    for info in ray.nodes():
        if not info.get("Alive"):
            continue
        avail = available.get(info["NodeID"], {}) if free else info.get("Resources", {})
        gpus = avail.get("GPU", 0.0)
        gpu_free = [1.0] * int(gpus) + ([gpus - int(gpus)] if gpus - int(gpus) > 1e-9 else [])
        nodes.append(Node(f"{info['NodeManagerAddress']}/{info['NodeID'][:8]}", avail.get("CPU", 0.0),
                          avail.get("memory", 0.0) / GIB, gpu_free))
    return nodes


def create_placement_groups(plan: Plan, timeout_s: float) -> dict[str, Any]:
    """One ready Ray placement group per plan group; UserError (groups removed) when not ready in time."""
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group

    # fail fast when even the whole cluster cannot hold the plan; resources others hold now are waited for
    fit(plan, live_nodes(free=False), "the Ray cluster (total resources)")
    pgs = {g: placement_group([b.ray_bundle() for b in bundles], strategy=plan.bundle_strategy,
                              name=f"promedical-{g}") for g, bundles in plan.bundles.items()}
    ready, _ = ray.wait([pg.ready() for pg in pgs.values()], num_returns=len(pgs), timeout=timeout_s)
    if len(ready) < len(pgs):
        nodes = live_nodes()
        for pg in pgs.values():
            remove_placement_group(pg)
        raise UserError(unsatisfiable_message(plan, f"placement groups not ready within placement.timeout_s="
                                              f"{timeout_s:g}s", nodes, "the Ray cluster (free resources)"))
    return pgs


def actor_options(slot: ActorSlot, pg: Any) -> dict[str, Any]:
    """Ray actor options that put `slot` in its bundle of `pg`."""
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    options: dict[str, Any] = dict(num_cpus=slot.resources.cpus, num_gpus=slot.resources.gpus,
                                   max_concurrency=1, scheduling_strategy=PlacementGroupSchedulingStrategy(
                                       placement_group=pg, placement_group_bundle_index=slot.bundle))
    if slot.resources.memory_gib:
        options["memory"] = int(slot.resources.memory_gib * GIB)
    return options


# placement groups of this process's latest build: a driver runs one set of roles at a time, so a new
# build releases the previous one's reservations (Ray keeps them until the driver exits otherwise)
_LIVE_GROUPS: list[Any] = []
RELEASE_WAIT_S = 10.0   # how long a release waits for Ray to report the groups removed


def release_placement_groups() -> None:
    """Remove the placement groups of this process's last build (their actors end with them).

    Waits (up to RELEASE_WAIT_S) until Ray shows their resources free again, so that the next plan
    is laid out on the whole cluster rather than around groups still being torn down.
    """
    import ray
    from ray.util.placement_group import remove_placement_group

    if not ray.is_initialized():
        _LIVE_GROUPS.clear()
        return
    before = ray.available_resources()
    freed: dict[str, float] = {}
    while _LIVE_GROUPS:
        pg = _LIVE_GROUPS.pop()
        for bundle in pg.bundle_specs:
            for key in ("CPU", "GPU"):
                freed[key] = freed.get(key, 0.0) + bundle.get(key, 0.0)
        remove_placement_group(pg)
    deadline = time.monotonic() + RELEASE_WAIT_S
    while freed and time.monotonic() < deadline:
        now = ray.available_resources()
        if all(now.get(k, 0.0) >= before.get(k, 0.0) + v - 1e-6 for k, v in freed.items()):
            return
        time.sleep(0.05)


def place_actors(plan: Plan, classes: dict[str, tuple[type, Any]],
                 timeout_s: float) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    """Start every slot's actor in its bundle; (handles by role, placement groups by group name).

    `classes[role]` = (class, kwargs), where kwargs is a dict for every replica or a function
    (slot, placement groups) -> dict for per-replica arguments (ranks, core binding).
    """
    release_placement_groups()
    pgs = create_placement_groups(plan, timeout_s)
    _LIVE_GROUPS.extend(pgs.values())
    handles: dict[str, list[Any]] = {role: [] for role in ROLES}
    for slot in plan.slots:
        handles[slot.role].append(start_actor(slot, classes[slot.role], pgs))
    return handles, pgs


def start_actor(slot: ActorSlot, cls_kwargs: tuple[type, Any], pgs: dict[str, Any]) -> Any:
    """One actor in `slot`'s bundle (also how a dead replica is replaced in place)."""
    import ray

    from promedical.observe.actor_logs import log_options

    cls, kwargs = cls_kwargs
    kwargs = kwargs(slot, pgs) if callable(kwargs) else kwargs
    options = actor_options(slot, pgs[slot.group]) | log_options(slot.role, slot.replica)  # observe/actor_logs.py
    return ray.remote(cls).options(**options).remote(**kwargs)


def bundle_address(pgs: dict[str, Any], slot: ActorSlot) -> tuple[str, int]:
    """(IP, free TCP port) on the node that holds `slot`'s bundle: a rendezvous for a rank group."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node = ray.util.placement_group_table(pgs[slot.group])["bundles_to_node_id"][slot.bundle]
    probe = ray.remote(_address_here).options(
        num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node, soft=False))
    return ray.get(probe.remote(), timeout=60)


def _address_here() -> tuple[str, int]:
    import socket

    import ray
    ip = ray.util.get_node_ip_address()
    with socket.socket() as s:
        s.bind((ip, 0))
        return ip, s.getsockname()[1]
