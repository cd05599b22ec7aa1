"""Scale-out on a simulated two-node Ray cluster: 2 policy ranks, 2 reference, 2 reward, 2 generators.

Real actors (DeepSpeed ranks over gloo, vLLM-CPU, the rule grader) on `ray.cluster_utils.Cluster`
nodes of one CPU each, so the planner must put the two colocated bundles on different nodes.
"""
import numpy as np
import pytest

from promedical.deploy.config import load_config

STEPS = 8
SCALE = ["placement.roles.policy.replicas=2", "placement.roles.reference.replicas=2",
         "placement.roles.reward.replicas=2", "generator.replicas=2", f"rollout.steps={STEPS}"]


@pytest.fixture(scope="module")
def cluster(own_ray):
    import ray
    from ray.cluster_utils import Cluster

    from promedical.deploy.build import start_ray

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    c.add_node(num_cpus=1)
    c.wait_for_nodes()
    start_ray(c.address)
    yield ray
    ray.shutdown()
    c.shutdown()


@pytest.mark.slow
def test_tiny_runs_on_two_nodes_where_the_plan_says_learns_and_trains_every_row_once(cluster, tmp_path):
    import ray

    from promedical.actors.groups import save_rollouts, wait_all
    from promedical.deploy.build import build_roles, resolve_models
    from promedical.deploy.placement import fit, make_plan
    from promedical.deploy.placement_ray import live_nodes, release_placement_groups
    from promedical.deploy.run import _settings, load_prompts
    from promedical.rollout.loop import LoopState, run_loop
    from promedical.rollout.prompts import PromptSource
    from promedical.storage.run_dir import RunDir

    cfg = load_config("tiny", SCALE)
    plan = make_plan(cfg.placement, cfg.generator.replicas)
    expected = fit(plan, live_nodes(free=False), "the test cluster")       # (group, bundle) -> node name
    roles = build_roles(cfg, *resolve_models(cfg))
    groups = {"policy": roles.policy, "reference": roles.reference, "reward": roles.reward,
              "generator": roles.generators}
    actual = {}
    for slot in plan.slots:
        handle = groups[slot.role].handles[slot.replica]
        actual[slot] = ray.get(handle.__ray_call__.remote(lambda self: ray.get_runtime_context().get_node_id()))
    # the two nodes are alike, so the plan fixes which actors share a node, not which node is which:
    # the planned node of every slot maps to one real node, and distinct planned nodes to distinct ones
    mapping = {expected[(s.group, s.bundle)]: node for s, node in actual.items()}
    assert all(mapping[expected[(s.group, s.bundle)]] == node for s, node in actual.items())
    assert len(set(mapping)) == len(set(mapping.values())) == 2             # both nodes used

    run = RunDir(tmp_path / "run")
    run.rollouts_dir.mkdir(parents=True)
    events = []

    def on_step(step, batch, metrics):
        wait_all([save_rollouts(str(run.rollout_path(step)), batch)], timeout_s=120)
        events.append(metrics)

    source = PromptSource(load_prompts(cfg), seed=cfg.run.seed, shuffle=cfg.data.shuffle)
    run_loop(roles, source, _settings(cfg), LoopState(), on_step=on_step)
    release_placement_groups()

    rewards = [e["reward_mean"] for e in events]
    assert np.mean(rewards[-2:]) > np.mean(rewards[:2]) + 0.05, rewards
    table = run.read_rollouts()
    keys = list(zip(table["prompt_id"].to_pylist(), table["group_id"].to_pylist(), table["sample_index"].to_pylist()))
    assert len(keys) == len(set(keys)) == STEPS * cfg.rollout.prompts_per_step * cfg.rollout.group_size
    assert sorted(set(table["generator_replica"].to_pylist())) == [0, 1]
    assert table["step"].to_pylist() == sorted(table["step"].to_pylist())
