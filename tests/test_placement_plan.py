"""The planner on described clusters, its validation, and `promedical plan` through main(). No Ray."""
from collections import Counter

import pytest

from promedical.cli.main import main
from promedical.deploy.config import load_config
from promedical.deploy.placement import described_cluster, fit, make_plan
from promedical.errors import UserError


def _where(overrides: list[str], cluster: str = "2x8", preset: str = "qwen3-8b") -> Counter:
    cfg = load_config(preset, overrides)
    plan = make_plan(cfg.placement, cfg.generator.replicas)
    nodes = fit(plan, described_cluster(cluster), "test")
    return Counter((s.role, nodes[(s.group, s.bundle)], s.group) for s in plan.slots)


def test_colocated_qwen3_8b_puts_replica_i_of_every_role_in_bundle_i_across_both_nodes():
    cfg = load_config("qwen3-8b")
    plan = make_plan(cfg.placement, cfg.generator.replicas)
    # 8 bundles of two GPUs: policy 1 + reference 0.25 + reward 0.25 + generator 0.5, CPUs 4 + 2 + 2 + 4
    assert [(b.gpus, b.cpus) for b in plan.bundles["shared"]] == [(2.0, 12.0)] * 8
    assert {(s.role, s.replica): s.bundle for s in plan.slots}[("generator", 5)] == 5
    where = _where([])
    for role in ("policy", "reference", "reward", "generator"):
        assert where[(role, "node0", "shared")] == 4 and where[(role, "node1", "shared")] == 4


def test_split_qwen3_8b_gives_each_role_its_own_group_and_gpus():
    where = _where(["placement.strategy=split"])
    # policy 8 x 1 GPU fills node0; reference 8 x 0.25 and reward 8 x 0.25 (2 GPUs each) and the
    # generators 8 x 0.5 (4 GPUs) share node1
    assert where == Counter({("policy", "node0", "policy"): 8, ("reference", "node1", "reference"): 8,
                             ("reward", "node1", "reward"): 8, ("generator", "node1", "generator"): 8})


def test_mapping_shares_bundles_only_within_a_named_group():
    cfg = load_config("qwen3-8b", ["placement.strategy=mapping", "placement.groups.policy=train",
                                   "placement.groups.reference=gen", "placement.groups.reward=gen",
                                   "placement.groups.generator=gen"])
    plan = make_plan(cfg.placement, cfg.generator.replicas)
    assert sorted(plan.bundles) == ["gen", "train"]
    assert [b.gpus for b in plan.bundles["gen"]] == [1.0] * 8   # reference 0.25 + reward 0.25 + generator 0.5
    assert {s.group for s in plan.slots if s.role in ("reference", "generator")} == {"gen"}


@pytest.mark.parametrize("strategy", ["colocated", "split"])
def test_one_node_of_four_gpus_is_refused_with_asked_and_available(strategy):
    with pytest.raises(UserError) as err:
        _where([f"placement.strategy={strategy}"], cluster="1x4")
    text = str(err.value)
    assert "\n" not in text
    assert "Asked:" in text and "total GPU 16" in text and "Available: node0: GPU 4" in text


def test_strict_spread_refuses_more_bundles_than_nodes():
    with pytest.raises(UserError, match="STRICT_SPREAD"):
        _where(["placement.bundle_strategy=STRICT_SPREAD"], cluster="4x8")
    assert _where(["placement.bundle_strategy=STRICT_SPREAD"], cluster="8x2")[("policy", "node7", "shared")] == 1


@pytest.mark.parametrize("override, key", [
    (["placement.strategy=mapping"], "placement.groups"),
    (["placement.roles.policy.num_gpus=1.5"], "placement.roles.policy.num_gpus"),
    (["placement.roles.generator.replicas=3"], "placement.roles.generator.replicas"),
    (["placement.roles.critic.num_gpus=1"], "placement.roles.critic"),
    (["placement.bundle_strategy=PACKED"], "placement.bundle_strategy"),
    (["placement.weight_sync=rdma"], "placement.weight_sync"),
    (["placement.roles.policy.num_cpus=0"], "placement.roles.policy"),
])
def test_bad_placement_values_name_the_key(override, key):
    with pytest.raises(UserError, match=key.replace(".", r"\.")):
        load_config("tiny", override)


def test_plan_cli_prints_the_table_for_both_strategies(capsys):
    assert main(["plan", "--config", "qwen3-8b", "--cluster", "2x8"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["ROLE", "REPLICA", "NODE", "BUNDLE", "RESOURCES"]
    assert "generator  7        node1  shared#7" in out
    assert main(["plan", "--config", "qwen3-8b", "--cluster", "2x8", "--set", "placement.strategy=split"]) == 0
    assert "32 bundles in 4 placement group(s)" in capsys.readouterr().out


def test_plan_cli_refuses_a_too_small_cluster_with_exit_2(capsys):
    # GPUs large enough for the estimated memory (vLLM's share grows with the GPU: 8 x 0.45 x 2000 +
    # 494 GiB of the other roles < 4 x 2000): the GPU count is what refuses
    assert main(["plan", "--config", "qwen3-8b", "--cluster", "1x4", "--gpu-memory-gib", "2000"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Asked:" in captured.err and "Available: node0: GPU 4 CPU 64 mem 512GiB" in captured.err
    assert main(["plan", "--config", "qwen3-8b", "--cluster", "two"]) == 2
    assert "--cluster 'two'" in capsys.readouterr().err
