"""Placement on the single CPU-only local Ray node that `promedical train` starts: four roles, two cores."""
import pytest

from promedical.deploy.config import load_config
from promedical.deploy.placement import ROLES, make_plan, place_actors
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
    # the second build in this process must first release the first one's two reserved cores
    found = _place(local_ray, [f"placement.strategy={strategy}"])
    spots = [spot for role in ROLES for spot in found[role]]
    assert len(spots) == 4 and len({node for node, _, _ in spots}) == 1
    assert len({pg for _, pg, _ in spots}) == groups and all(gpus == () for _, _, gpus in spots)


def test_more_than_two_cores_of_roles_is_refused_at_once(local_ray):
    with pytest.raises(UserError, match=r"total CPU 3\.5.*Available: .*CPU 2"):
        _place(local_ray, ["generator.replicas=4"])
