"""Placement on the single CPU-only local Ray node that `promedical train` starts: four roles, two cores."""
import subprocess
import sys

import pytest

from promedical.deploy.config import load_config
from promedical.deploy.placement import ROLES, make_plan
from promedical.deploy.placement_ray import place_actors, release_placement_groups
from promedical.errors import UserError


def setup_module(module):
    """Ship this module's stand-in class to Ray workers by value (tests/ is not importable there)."""
    from ray import cloudpickle
    cloudpickle.register_pickle_by_value(module)


class Probe:
    def __init__(self, **kwargs) -> None:
        pass

    def where(self) -> tuple:
        import ray
        ctx = ray.get_runtime_context()
        return ctx.get_node_id(), ctx.get_placement_group_id(), tuple(ray.get_gpu_ids())


def _place(ray, overrides: list[str]) -> dict[str, list[tuple]]:
    cfg = load_config("tiny", overrides)
    handles, _ = place_actors(make_plan(cfg.placement, cfg.generator.replicas),
                              {role: (Probe, {}) for role in ROLES}, cfg.placement.timeout_s)
    return {role: ray.get([h.where.remote() for h in hs], timeout=120) for role, hs in handles.items()}


@pytest.mark.parametrize("strategy, groups", [("colocated", 1), ("split", 4)])
def test_tiny_preset_places_all_roles_on_the_local_node_in_turn(local_ray, strategy, groups):
    # the second build in this process must first release the first one's reserved core
    found = _place(local_ray, [f"placement.strategy={strategy}"])
    spots = [spot for role in ROLES for spot in found[role]]
    assert len(spots) == 4 and len({node for node, _, _ in spots}) == 1
    assert len({pg for _, pg, _ in spots}) == groups and all(gpus == () for _, _, gpus in spots)


def test_more_than_two_cores_of_roles_is_refused_at_once(local_ray):
    with pytest.raises(UserError, match=r"total CPU 2\.75.*Available: .*CPU 2"):
        _place(local_ray, ["generator.replicas=8"])


def test_plan_cli_reads_the_free_resources_of_a_running_cluster(local_ray):
    release_placement_groups()
    address = local_ray.get_runtime_context().gcs_address
    cmd = [sys.executable, "-m", "promedical.cli.main", "plan", "--config", "tiny", "--address", address]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "colocated: 1 bundles in 1 placement group(s), total CPU 1" in done.stdout
    assert "(free resources)" in done.stdout
    refused = subprocess.run(cmd + ["--set", "generator.replicas=8"], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "Available:" in refused.stderr and "CPU 2" in refused.stderr
