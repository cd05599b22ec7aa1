"""The planner on described clusters, its validation, and `promedical plan` through main(). No Ray."""
from collections import Counter

import pytest

from promedical.deploy.cli import main
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
    # 16 bundles of one GPU: 4 roles x 0.25 GPU each, CPUs 4 + 2 + 2 + 4
    assert [(b.gpus, b.cpus) for b in plan.bundles["shared"]] == [(1.0, 12.0)] * 16
    assert {(s.role, s.replica): s.bundle for s in plan.slots}[("generator", 5)] == 5
    where = _where([])
    for role in ("policy", "reference", "reward", "generator"):
        assert where[(role, "node0", "shared")] == 8 and where[(role, "node1", "shared")] == 8


def test_split_qwen3_8b_gives_each_role_its_own_group_and_gpus():
    where = _where(["placement.strategy=split"])
    # each role: 16 x 0.25 GPU = 4 GPUs; PACK fills node0 with policy then reference
    assert where == Counter({("policy", "node0", "policy"): 16, ("reference", "node0", "reference"): 16,
                             ("reward", "node1", "reward"): 16, ("generator", "node1", "generator"): 16})


def test_mapping_shares_bundles_only_within_a_named_group():
    cfg = load_config("qwen3-8b", ["placement.strategy=mapping", "placement.groups.policy=train",
                                   "placement.groups.reference=train", "placement.groups.reward=gen",
                                   "placement.groups.generator=gen"])
    plan = make_plan(cfg.placement, cfg.generator.replicas)
    assert sorted(plan.bundles) == ["gen", "train"]
    assert [b.gpus for b in plan.bundles["train"]] == [0.5] * 16   # policy 0.25 + reference 0.25
    assert {s.group for s in plan.slots if s.role in ("policy", "reference")} == {"train"}


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
    assert _where(["placement.bundle_strategy=STRICT_SPREAD"], cluster="16x1")[("policy", "node15", "shared")] == 1


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
    assert "generator  15       node1  shared#15" in out
    assert main(["plan", "--config", "qwen3-8b", "--cluster", "2x8", "--set", "placement.strategy=split"]) == 0
    assert "64 bundles in 4 placement group(s)" in capsys.readouterr().out


def test_plan_cli_refuses_a_too_small_cluster_with_exit_2(capsys):
    assert main(["plan", "--config", "qwen3-8b", "--cluster", "1x4"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Asked:" in captured.err and "Available: node0: GPU 4 CPU 64 mem 512GiB" in captured.err
    assert main(["plan", "--config", "qwen3-8b", "--cluster", "two"]) == 2
    assert "--cluster 'two'" in capsys.readouterr().err
