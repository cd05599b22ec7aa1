"""Ray has the last word: replicas that deploy/gpu_fit.py seats on one GPU share one in Ray too.

A simulated two-node cluster declares 2 GPUs per node (accounting only, no CUDA); stand-in actors report
`ray.get_gpu_ids()`, and the sets of replicas sharing a GPU are compared with the memory plan's seating.
"""
from collections import defaultdict

import pytest

from promedical.deploy.config import load_config
from promedical.deploy.gpu_fit import slot_gpus
from promedical.deploy.placement import ROLES, fit, make_plan
from promedical.deploy.placement_ray import live_nodes, place_actors, release_placement_groups

NODE = {"num_cpus": 2, "num_gpus": 2}
# the qwen3-8b preset's shape, two replicas per role: policy a whole GPU, the other three share one
SHAPE = ["placement.roles.policy.num_gpus=1", "placement.roles.reference.num_gpus=0.25",
         "placement.roles.reward.num_gpus=0.25", "placement.roles.generator.num_gpus=0.5",
         "placement.roles.policy.replicas=2", "placement.roles.reference.replicas=2",
         "placement.roles.reward.replicas=2", "generator.replicas=2"]


def setup_module(module):
    from ray import cloudpickle
    cloudpickle.register_pickle_by_value(module)


class Probe:
    def __init__(self, **kwargs) -> None:
        pass

    def where(self) -> tuple:
        import ray
        return ray.get_runtime_context().get_node_id(), tuple(ray.get_gpu_ids())


@pytest.fixture(scope="module")
def ray_cluster(own_ray):
    import ray
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args=dict(NODE))
    c.add_node(**NODE)
    ray.init(address=c.address, logging_level="ERROR", log_to_driver=False)
    c.wait_for_nodes()
    yield ray
    release_placement_groups()
    ray.shutdown()
    c.shutdown()


def _sharing(seats: dict) -> set[frozenset]:
    """The sets of replicas that sit on the same GPU."""
    by_gpu = defaultdict(set)
    for replica, gpus in seats.items():
        for gpu in gpus:
            by_gpu[gpu].add(replica)
    return {frozenset(v) for v in by_gpu.values()}


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["colocated", "split"])
def test_gpu_sharing_in_ray_matches_the_memory_plan(ray_cluster, strategy):
    ray = ray_cluster
    cfg = load_config("tiny", SHAPE + [f"placement.strategy={strategy}"])
    plan = make_plan(cfg.placement, cfg.generator.replicas)
    nodes = live_nodes(free=False)
    planned = _sharing(slot_gpus(plan, fit(plan, nodes, "test"), nodes))
    handles, _ = place_actors(plan, {role: (Probe, {}) for role in ROLES}, timeout_s=60)
    refs = {(role, k): h.where.remote() for role in ROLES for k, h in enumerate(handles[role])}
    found = dict(zip(refs, ray.get(list(refs.values()), timeout=120)))
    actual = _sharing({replica: [(node, gpu) for gpu in gpus] for replica, (node, gpus) in found.items()})
    for hs in handles.values():
        for h in hs:
            ray.kill(h)
    assert actual == planned
    if strategy == "colocated":   # each policy rank alone; reference, reward, generator i together
        assert frozenset({("policy", 0)}) in actual
        assert frozenset({("reference", 1), ("reward", 1), ("generator", 1)}) in actual
