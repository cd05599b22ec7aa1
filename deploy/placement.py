"""Placement planner: config -> bundles per group -> nodes, and the Ray placement groups that hold them.

Placement is data made here and handed to actor construction; no actor knows whether it is colocated.
A *group* is a set of roles whose replicas share bundles; the strategy decides the groups:
    colocated  one group holds every role: bundle i carries replica i of each role (time-sharing)
    split      one group per role: no two roles share a bundle
    mapping    `placement.groups` names each role's group; roles with the same group name share
A bundle reserves the sum of what its replicas ask (`placement.roles.<role>`, per replica), so
colocated roles time-share one device through fractional `num_gpus` (0.25 each: four roles, one GPU).
One Ray placement group is made per group, with `placement.bundle_strategy` (PACK by default), by
deploy/placement_ray.py; this module is the pure plan.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from promedical.deploy.config_schema import RoleResources
from promedical.errors import UserError

ROLES = ("policy", "reference", "reward", "generator")
BUNDLE_STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")
WEIGHT_SYNC_METHODS = ("auto", "object_store", "collective", "nccl", "cuda_ipc")   # deploy/sync_plan.py checks them
GIB = 2**30


def _colocated(roles: tuple[str, ...], groups: dict[str, str]) -> dict[str, str]:
    return {role: "shared" for role in roles}


def _split(roles: tuple[str, ...], groups: dict[str, str]) -> dict[str, str]:
    return {role: role for role in roles}


def _mapping(roles: tuple[str, ...], groups: dict[str, str]) -> dict[str, str]:
    return {role: groups[role] for role in roles}


# strategy name -> (roles, placement.groups) -> role -> group name
STRATEGIES: dict[str, Callable[[tuple[str, ...], dict[str, str]], dict[str, str]]] = {
    "colocated": _colocated, "split": _split, "mapping": _mapping}


@dataclass(frozen=True)
class Resources:
    cpus: float = 0.0
    gpus: float = 0.0
    memory_gib: float = 0.0

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.cpus + other.cpus, self.gpus + other.gpus, self.memory_gib + other.memory_gib)

    def ray_bundle(self) -> dict[str, float]:
        """Ray bundle dict; zero entries left out (Ray refuses zero-valued bundle resources)."""
        out = {"CPU": self.cpus, "GPU": self.gpus, "memory": float(int(self.memory_gib * GIB))}
        return {k: v for k, v in out.items() if v > 0}

    def __str__(self) -> str:
        parts = [f"GPU {self.gpus:g}"] if self.gpus else []
        parts.append(f"CPU {self.cpus:g}")
        if self.memory_gib:
            parts.append(f"mem {self.memory_gib:g}GiB")
        return " ".join(parts)


@dataclass(frozen=True)
class ActorSlot:
    """One actor replica: the bundle it goes in and the resources it takes from that bundle."""

    role: str
    replica: int
    group: str
    bundle: int
    resources: Resources


@dataclass
class Plan:
    """Bundles per group (in placement-group order) and the slot of every replica."""

    strategy: str
    bundle_strategy: str
    bundles: dict[str, list[Resources]] = field(default_factory=dict)
    slots: list[ActorSlot] = field(default_factory=list)

    def total(self) -> Resources:
        return sum((b for group in self.bundles.values() for b in group), Resources())


def role_resources(placement: Any, role: str) -> Any:
    """`placement.roles.<role>`, or the RoleResources defaults when the config leaves the role out."""
    return placement.roles.get(role) or RoleResources()


def replica_counts(placement: Any, generator_replicas: int) -> dict[str, int]:
    """Replicas per role; the generator count is `generator.replicas` (the one source of truth)."""
    return {role: generator_replicas if role == "generator" else role_resources(placement, role).replicas
            for role in ROLES}


def make_plan(placement: Any, generator_replicas: int, roles: tuple[str, ...] = ROLES) -> Plan:
    """Turn `placement` into bundles per group: bundle i of a group holds replica i of each member role.

    `roles` are the roles the run starts (a LoRA run has no reference: deploy/config.py plan_roles).
    """
    groups = STRATEGIES[placement.strategy](ROLES, placement.groups)
    counts = replica_counts(placement, generator_replicas)
    plan = Plan(strategy=placement.strategy, bundle_strategy=placement.bundle_strategy)
    for role in roles:
        res = role_resources(placement, role)
        need = Resources(res.num_cpus, res.num_gpus, res.memory_gib)
        bundles = plan.bundles.setdefault(groups[role], [])
        for k in range(counts[role]):
            if k == len(bundles):
                bundles.append(Resources())
            bundles[k] = bundles[k] + need
            plan.slots.append(ActorSlot(role=role, replica=k, group=groups[role], bundle=k, resources=need))
    return plan


def placement_problems(placement: Any, generator_replicas: int, roles: tuple[str, ...] = ROLES) -> list[str]:
    """Value-level problems of `placement.*`, as 'key=value: reason' lines (see deploy/config.py)."""
    out = []
    for role in placement.roles:
        if role not in ROLES:
            out.append(f"placement.roles.{role}: unknown role; roles are {', '.join(ROLES)}")
    for role in ROLES:
        res, key = role_resources(placement, role), f"placement.roles.{role}"
        if res.replicas < 1:
            out.append(f"{key}.replicas={res.replicas} must be >= 1")
        if min(res.num_cpus, res.num_gpus, res.memory_gib) < 0:
            out.append(f"{key}: num_cpus, num_gpus and memory_gib must be >= 0")
        if res.num_gpus > 1 and res.num_gpus != int(res.num_gpus):
            out.append(f"{key}.num_gpus={res.num_gpus}: above 1 Ray needs a whole number of GPUs")
        if res.num_cpus <= 0 and res.num_gpus <= 0:
            out.append(f"{key}: give num_cpus or num_gpus > 0 (an empty bundle cannot be reserved)")
    gen = role_resources(placement, "generator").replicas
    if gen != 1:      # one key for the generator count: generator.replicas
        out.append(f"placement.roles.generator.replicas={gen}: the generator count is generator.replicas; "
                   f"set generator.replicas={gen} and leave placement.roles.generator.replicas out")
    if placement.strategy == "mapping":
        missing = [r for r in ROLES if not placement.groups.get(r)]
        if missing:
            out.append(f"placement.groups: strategy mapping needs a group for {', '.join(missing)}, "
                       f"e.g. --set placement.groups.{missing[0]}=train")
    out += [f"placement.groups.{r}: unknown role; roles are {', '.join(ROLES)}" for r in placement.groups
            if r not in ROLES]
    if placement.strategy in STRATEGIES and not any("groups" in line for line in out):
        for group, bundles in make_plan(placement, generator_replicas, roles).bundles.items():
            odd = [b.gpus for b in bundles if b.gpus > 1 and b.gpus != int(b.gpus)]
            if odd:
                out.append(f"placement: a bundle of group {group!r} sums to {odd[0]:g} GPUs; Ray needs a "
                           f"whole number above 1, so adjust placement.roles.<role>.num_gpus of its roles")
    if placement.bundle_strategy not in BUNDLE_STRATEGIES:
        out.append(f"placement.bundle_strategy={placement.bundle_strategy!r} is unknown; "
                   f"choose one of {list(BUNDLE_STRATEGIES)}")
    if not placement.timeout_s > 0:
        out.append(f"placement.timeout_s={placement.timeout_s} must be > 0")
    if placement.weight_sync not in WEIGHT_SYNC_METHODS:
        out.append(f"placement.weight_sync={placement.weight_sync!r} is unknown; "
                   f"choose one of {list(WEIGHT_SYNC_METHODS)}")
    return out


# ----------------------------------------------------------------------------- nodes and fitting


@dataclass
class Node:
    """A node's free resources; `gpu_free` is the free fraction of each GPU (Ray fractional GPUs)."""

    name: str
    cpus: float
    memory_gib: float
    gpu_free: list[float]

    def copy(self) -> Node:
        return Node(self.name, self.cpus, self.memory_gib, list(self.gpu_free))

    def describe(self) -> str:
        return f"{self.name}: GPU {sum(self.gpu_free):g} CPU {self.cpus:g} mem {self.memory_gib:g}GiB"

    def _gpu_pick(self, gpus: float) -> list[int] | None:
        if gpus <= 0:
            return []
        if gpus < 1:
            fits = [i for i, f in enumerate(self.gpu_free) if f >= gpus - 1e-9]
            return fits[:1] or None
        whole = [i for i, f in enumerate(self.gpu_free) if f >= 1 - 1e-9]
        return whole[:int(gpus)] if len(whole) >= gpus else None

    def take(self, need: Resources) -> bool:
        """Reserve `need` here if it fits; True when reserved."""
        picked = self._gpu_pick(need.gpus)
        if picked is None or need.cpus > self.cpus + 1e-9 or need.memory_gib > self.memory_gib + 1e-9:
            return False
        self.cpus -= need.cpus
        self.memory_gib -= need.memory_gib
        for i in picked:
            self.gpu_free[i] -= min(1.0, need.gpus)
        return True


# Resources assumed per GPU of a described node (`--cluster NxG`): a conservative share of a DGX-class
# 8-GPU server (224 vCPUs, 2 TiB). A node without GPUs gets one GPU's share. CLI flags override them.
DESCRIBED_CPUS_PER_GPU = 16.0
DESCRIBED_MEMORY_GIB_PER_GPU = 128.0


def described_cluster(spec: str, node_cpus: float = 0.0, node_memory_gib: float = 0.0) -> list[Node]:
    """Nodes of `NxG` (N nodes with G GPUs each); CPUs and memory per node from the DESCRIBED_* shares."""
    try:
        n, g = (int(x) for x in spec.lower().split("x"))
    except ValueError:
        raise UserError(f"--cluster {spec!r}: expected NODESxGPUS, e.g. --cluster 2x8") from None
    if n < 1 or g < 0:
        raise UserError(f"--cluster {spec!r}: needs at least 1 node and 0 or more GPUs per node")
    share = max(g, 1)
    cpus = node_cpus or DESCRIBED_CPUS_PER_GPU * share
    memory = node_memory_gib or DESCRIBED_MEMORY_GIB_PER_GPU * share
    return [Node(f"node{i}", cpus, memory, [1.0] * g) for i in range(n)]


def _order(strategy: str, nodes: list[Node], used: list[str]) -> list[Node]:
    """Nodes to try for the next bundle: SPREAD tries unused nodes first, STRICT_SPREAD only those."""
    if strategy not in ("SPREAD", "STRICT_SPREAD"):
        return nodes
    fresh = [n for n in nodes if n.name not in used]
    return fresh if strategy == "STRICT_SPREAD" else fresh + [n for n in nodes if n.name in used]


def _place_group(bundles: list[Resources], strategy: str, nodes: list[Node]) -> list[str] | None:
    """Node name per bundle, reserving on `nodes`, or None (nodes untouched) when the group does not fit."""
    singles = [[i] for i in range(len(nodes))]
    # PACK, like Ray, first looks for one node that takes the whole group, then packs greedily
    pools = {"STRICT_PACK": singles, "PACK": singles + [list(range(len(nodes)))]}.get(
        strategy, [list(range(len(nodes)))])
    for pool in pools:
        trial = [nodes[i].copy() for i in pool]
        names: list[str] = []
        for need in bundles:
            node = next((n for n in _order(strategy, trial, names) if n.take(need)), None)
            if node is None:
                break
            names.append(node.name)
        if len(names) == len(bundles):
            for i, node in zip(pool, trial):
                nodes[i] = node
            return names
    return None


def fit(plan: Plan, nodes: list[Node], where: str) -> dict[tuple[str, int], str]:
    """(group, bundle) -> node name, as Ray would place the groups in order; UserError if it cannot."""
    free = [n.copy() for n in nodes]
    out: dict[tuple[str, int], str] = {}
    for group, bundles in plan.bundles.items():
        names = _place_group(bundles, plan.bundle_strategy, free)
        if names is None:
            raise UserError(unsatisfiable_message(plan, f"cannot place group {group!r}", nodes, where))
        out.update({(group, i): name for i, name in enumerate(names)})
    return out


def unsatisfiable_message(plan: Plan, problem: str, nodes: list[Node], where: str) -> str:
    """One line in the manner of RLlib's placement timeout: what went wrong, asked, available, the fix."""
    asked = "; ".join(f"{g}: {len(b)} x [{b[0]}]" if len(set(b)) == 1 else f"{g}: {len(b)} bundles, "
                      f"{sum(b, Resources())}" for g, b in plan.bundles.items())
    return (f"placement.strategy={plan.strategy} ({plan.bundle_strategy}) {problem} on {where}. Asked: {asked} (total {plan.total()}). Available: "
            + "; ".join(n.describe() for n in nodes)
            + ". Fix: add nodes/GPUs, or lower placement.roles.<role>.replicas / num_gpus / num_cpus")


def render(plan: Plan, assignment: dict[tuple[str, int], str]) -> str:
    """The plan as a table: role, replica, node, bundle (group#index), resources."""
    rows = [("ROLE", "REPLICA", "NODE", "BUNDLE", "RESOURCES")]
    for s in plan.slots:
        rows.append((s.role, str(s.replica), assignment[(s.group, s.bundle)], f"{s.group}#{s.bundle}",
                     str(s.resources)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.append(f"{plan.strategy}: {sum(len(b) for b in plan.bundles.values())} bundles in "
                 f"{len(plan.bundles)} placement group(s), total {plan.total()}")
    return "\n".join(lines)
