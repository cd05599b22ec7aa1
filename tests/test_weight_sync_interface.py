"""The versioned weight-sync interface on CPU: versions land between requests; a stuck sync fails in time."""
import time

import pytest

from promedical.actors import weight_sync
from promedical.actors.weight_sync import ObjectStoreSync, WeightSyncError, WeightSyncTimeout, choose_method

def setup_module(module):
    """Ship this module's stand-in classes to Ray workers by value (tests/ is not importable there)."""
    from ray import cloudpickle
    cloudpickle.register_pickle_by_value(module)


class FakePolicy:
    """Stand-in policy: its weights are a version-stamped list, so a generator's copy shows which it got."""

    def __init__(self) -> None:
        self.version = 0

    def bump(self) -> int:
        self.version += 1
        return self.version

    def export_weights(self) -> list:
        return [("w", [float(self.version)] * 3)]


class FakeGenerator:
    """Stand-in generator: `generate` reports the weights it sampled with; loads can hang or fail."""

    def __init__(self, load_delay_s: float = 0.0, fail: bool = False) -> None:
        self.weights: list = []
        self.loaded: list[int] = []
        self.load_delay_s = load_delay_s
        self.fail = fail

    def generate(self, seconds: float) -> list:
        time.sleep(seconds)
        return list(self.weights)

    def load_weights(self, version: int, named_tensors) -> float:
        if self.fail:
            raise RuntimeError("weights do not match the model")
        time.sleep(self.load_delay_s)
        self.weights = list(named_tensors)
        self.loaded.append(version)
        return 0.01

    def versions(self) -> list[int]:
        return self.loaded


@pytest.fixture(scope="module")
def ray_up(local_ray):
    return local_ray


def _actors(ray, n: int = 2, **gen_kwargs):
    policy = ray.remote(FakePolicy).options(num_cpus=0).remote()
    gens = [ray.remote(FakeGenerator).options(num_cpus=0, max_concurrency=1).remote(**gen_kwargs) for _ in range(n)]
    ray.get([policy.bump.remote()] + [g.versions.remote() for g in gens])   # started, so timeouts measure loads
    return policy, gens


def test_object_store_sync_lands_each_version_between_requests(ray_up):
    ray = ray_up
    policy, gens = _actors(ray)
    sync = ObjectStoreSync(policy=policy, generators=gens)
    busy = [g.generate.remote(0.5) for g in gens]        # a request in progress when the sync is queued
    ray.get(policy.bump.remote())
    pending = sync.start(1)
    after = [g.generate.remote(0.0) for g in gens]
    assert weight_sync.wait(pending, timeout_s=30) == pytest.approx(0.01)
    assert ray.get(busy) == [[], []]                     # the running request kept the old weights
    assert ray.get(after) == [[("w", [2.0] * 3)]] * 2     # the next one sampled with the new weights
    weight_sync.wait(sync.start(2), timeout_s=30)
    assert ray.get([g.versions.remote() for g in gens]) == [[1, 2], [1, 2]]


def test_a_generator_that_never_answers_fails_within_the_timeout(ray_up):
    ray = ray_up
    policy, gens = _actors(ray, n=1, load_delay_s=3600)
    pending = ObjectStoreSync(policy=policy, generators=gens).start(7)
    start = time.perf_counter()
    with pytest.raises(WeightSyncTimeout) as err:
        weight_sync.wait(pending, timeout_s=1.0)
    assert time.perf_counter() - start < 5.0
    assert "version 7" in str(err.value) and "generator replica 0" in str(err.value)
    assert "generator.sync_timeout_s=1s" in str(err.value)
    ray.kill(gens[0])


def test_the_loop_raises_its_own_timeout_for_a_stuck_sync(ray_up):
    from promedical.rollout.loop import Roles, WeightSyncTimeout as LoopTimeout, sync_weights, wait_sync

    ray = ray_up
    policy, gens = _actors(ray, n=2)
    _, (stuck,) = _actors(ray, n=1, load_delay_s=3600)
    roles = Roles(policy=policy, reference=None, reward=None, generators=gens + [stuck])
    refs = sync_weights(roles, 3)
    with pytest.raises(LoopTimeout, match=r"generator replica 2 \(1 of 3\)"):
        wait_sync(refs, 1.0, 3)
    ray.kill(stuck)


def test_a_failing_load_names_the_replica_and_the_cause(ray_up):
    ray = ray_up
    policy, good = _actors(ray, n=1)
    _, bad = _actors(ray, n=1, fail=True)
    pending = ObjectStoreSync(policy=policy, generators=good + bad).start(4)
    with pytest.raises(WeightSyncError, match="failed on generator replica 1: .*weights do not match"):
        weight_sync.wait(pending, timeout_s=30)


@pytest.mark.parametrize("requested, cuda, shared, method", [
    ("auto", False, True, "object_store"), ("auto", True, True, "cuda_ipc"),
    ("auto", True, False, "nccl"), ("nccl", True, True, "nccl"), ("object_store", True, False, "object_store"),
])
def test_auto_picks_the_method_from_device_and_placement(requested, cuda, shared, method):
    assert choose_method(requested, cuda=cuda, generator_shares_policy_bundle=shared) == method
    assert method in weight_sync.SYNC_METHODS
