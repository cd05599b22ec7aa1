"""Where actors land on a simulated two-node Ray cluster declaring GPUs (stand-in actors, no CUDA touched)."""
from collections import defaultdict

import pytest

from promedical.deploy.config import load_config
from promedical.deploy.placement import ROLES, make_plan
from promedical.deploy.placement_ray import place_actors, release_placement_groups
from promedical.errors import UserError

NODE = {"num_cpus": 2, "num_gpus": 2}   # declared, not real: Ray only does the accounting

def setup_module(module):
    """Ship this module's stand-in classes to Ray workers by value (tests/ is not importable there)."""
    from ray import cloudpickle
    cloudpickle.register_pickle_by_value(module)


class Probe:
    """Stand-in for a role: reports where Ray put it. It never imports torch or touches a device."""

    def __init__(self, **kwargs) -> None:
        pass

    def where(self) -> dict:
        import ray
        ctx = ray.get_runtime_context()
        return {"node": ctx.get_node_id(), "pg": ctx.get_placement_group_id(), "gpus": tuple(ray.get_gpu_ids())}


@pytest.fixture(scope="module")
def cluster(own_ray):
    import ray
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args=dict(NODE))
    c.add_node(**NODE)
    ray.init(address=c.address, logging_level="ERROR", log_to_driver=False)
    c.wait_for_nodes()
    yield ray, [n.node_id for n in c.list_all_nodes()]
    release_placement_groups()
    ray.shutdown()
    c.shutdown()


def _place(ray, overrides: list[str]) -> dict[tuple[str, int], dict]:
    cfg = load_config("tiny", overrides)
    plan = make_plan(cfg.placement, cfg.generator.replicas)
    handles, pgs = place_actors(plan, {role: (Probe, {}) for role in ROLES}, timeout_s=60)
    refs = {(role, k): h.where.remote() for role in ROLES for k, h in enumerate(handles[role])}
    found = dict(zip(refs, ray.get(list(refs.values()), timeout=120)))
    for slot in plan.slots:   # each actor sits in the group and on the node Ray reserved for its bundle
        table = ray.util.placement_group_table(pgs[slot.group])
        f = found[(slot.role, slot.replica)]
        assert f["pg"] == pgs[slot.group].id.hex(), slot
        assert f["node"] == table["bundles_to_node_id"][slot.bundle], slot
        f["bundle"] = slot.bundle
    for hs in handles.values():
        for h in hs:
            ray.kill(h)
    return found


def _roles(spec: dict[str, str]) -> list[str]:
    return [f"placement.roles.{role}.{key}" for role, keys in spec.items() for key in keys.split()]


def test_colocated_spread_puts_replica_i_of_every_role_on_one_gpu_and_bundles_on_two_nodes(cluster):
    ray, nodes = cluster
    res = [f"placement.roles.{r}.{k}" for r in ROLES for k in ("num_gpus=0.25", "num_cpus=0.25")]
    found = _place(ray, res + ["placement.roles.policy.replicas=2", "placement.roles.reference.replicas=2",
                               "placement.roles.reward.replicas=2", "generator.replicas=2",
                               "placement.bundle_strategy=SPREAD"])
    for k in (0, 1):
        spots = {(f["node"], f["pg"], f["bundle"], f["gpus"]) for (r, i), f in found.items() if i == k}
        assert len(spots) == 1, f"replica {k} of the four roles is not in one bundle on one GPU: {spots}"
        assert next(iter(spots))[2] == k and len(next(iter(spots))[3]) == 1
    assert found[("policy", 0)]["node"] != found[("policy", 1)]["node"]
    assert {f["node"] for f in found.values()} == set(nodes)


def test_split_keeps_policy_and_generators_on_disjoint_gpus(cluster):
    ray, nodes = cluster
    found = _place(ray, ["placement.strategy=split", "generator.replicas=2",
                         "placement.roles.policy.replicas=2", "placement.roles.policy.num_gpus=1",
                         "placement.roles.generator.num_gpus=1", "placement.roles.policy.num_cpus=0.25",
                         "placement.roles.generator.num_cpus=0.25", "placement.roles.reference.num_cpus=0.25",
                         "placement.roles.reward.num_cpus=0.25"])
    pgs = defaultdict(set)
    for (role, _), f in found.items():
        pgs[role].add(f["pg"])
    assert all(len(p) == 1 for p in pgs.values()) and len(set.union(*pgs.values())) == 4
    policy_nodes = {found[("policy", k)]["node"] for k in (0, 1)}
    generator_nodes = {found[("generator", k)]["node"] for k in (0, 1)}
    # PACK: both policy GPUs on one node, which leaves the generators the other node's two GPUs
    assert len(policy_nodes) == 1 and len(generator_nodes) == 1 and policy_nodes != generator_nodes
    assert found[("reference", 0)]["gpus"] == () and found[("reward", 0)]["gpus"] == ()


def test_mapping_colocates_reference_with_policy_and_reward_with_the_first_generator(cluster):
    ray, _ = cluster
    found = _place(ray, _roles({r: "num_gpus=0.5 num_cpus=0.25" for r in ROLES}) + [
        "placement.strategy=mapping", "generator.replicas=2", "placement.groups.policy=train",
        "placement.groups.reference=train", "placement.groups.reward=gen", "placement.groups.generator=gen"])
    spot = {key: (f["node"], f["pg"], f["bundle"], f["gpus"]) for key, f in found.items()}
    assert spot[("policy", 0)] == spot[("reference", 0)]
    assert spot[("reward", 0)] == spot[("generator", 0)]
    assert spot[("generator", 1)][1:3] == (spot[("generator", 0)][1], 1)
    assert spot[("policy", 0)][1] != spot[("generator", 0)][1]
    assert (spot[("policy", 0)][0], spot[("policy", 0)][3]) != (spot[("generator", 0)][0], spot[("generator", 0)][3])


def test_a_plan_the_live_cluster_cannot_hold_is_refused_listing_free_resources(cluster):
    ray, _ = cluster
    before = len(ray.util.placement_group_table())
    with pytest.raises(UserError) as err:
        _place(ray, ["placement.roles.policy.num_gpus=1", "placement.roles.policy.replicas=5",
                     "rollout.prompts_per_step=5", "algo.mini_batches=1"])   # 5 ranks: 1 group each
    assert "Asked:" in str(err.value) and "Available:" in str(err.value) and "GPU 2" in str(err.value)
    assert len(ray.util.placement_group_table()) == before   # nothing reserved on refusal
