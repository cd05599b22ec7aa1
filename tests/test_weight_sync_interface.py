"""The versioned weight-sync interface on CPU: versions land between requests; a stuck sync fails in time."""
import time

import pytest

from promedical.actors import weight_sync
from promedical.actors.groups import GeneratorGroup, PolicyGroup
from promedical.actors.weight_sync import ObjectStoreSync, Syncer, WeightSyncError, WeightSyncTimeout, choose_method

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


def _sync(policy, gens) -> ObjectStoreSync:
    return ObjectStoreSync(policy=PolicyGroup([policy], zero_stage=0, mini_batches=1), generators=GeneratorGroup(gens))


def test_object_store_sync_lands_each_version_between_requests(ray_up):
    ray = ray_up
    policy, gens = _actors(ray)
    sync = _sync(policy, gens)
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
    pending = _sync(policy, gens).start(7)
    start = time.perf_counter()
    with pytest.raises(WeightSyncTimeout) as err:
        weight_sync.wait(pending, timeout_s=1.0)
    assert time.perf_counter() - start < 5.0
    assert "version 7" in str(err.value) and "generator replica 0" in str(err.value)
    assert "generator.sync_timeout_s=1s" in str(err.value)
    ray.kill(gens[0])


def test_the_loops_syncer_times_out_naming_the_stuck_replica(ray_up):
    ray = ray_up
    policy, gens = _actors(ray, n=2)
    _, (stuck,) = _actors(ray, n=1, load_delay_s=3600)
    syncer = Syncer(_sync(policy, gens + [stuck]), timeout_s=1.0)    # no healing: the timeout is the answer
    with pytest.raises(WeightSyncTimeout, match=r"generator replica 2 \(1 of 3\)"):
        syncer.wait(syncer.start(3))
    ray.kill(stuck)


def test_a_failing_load_names_the_replica_and_the_cause(ray_up):
    ray = ray_up
    policy, good = _actors(ray, n=1)
    _, bad = _actors(ray, n=1, fail=True)
    pending = _sync(policy, good + bad).start(4)
    with pytest.raises(WeightSyncError, match="failed on generator replica 1: .*weights do not match"):
        weight_sync.wait(pending, timeout_s=30)


@pytest.mark.parametrize("requested, cuda, shared, zero, packed, method", [
    ("auto", False, True, 0, False, "object_store"), ("auto", True, True, 0, False, "cuda_ipc"),
    ("auto", True, False, 0, False, "collective"), ("nccl", True, True, 0, False, "nccl"),
    ("object_store", True, False, 0, False, "object_store"),
    ("auto", True, False, 3, False, "collective"),       # ZeRO-3 on separate GPUs: gathered bucket by bucket
    ("auto", True, True, 3, False, "object_store"),      # ZeRO-3 on the policy's GPU: no IPC of partitions
    ("auto", True, False, 0, True, "object_store"),      # two NCCL ranks could share a GPU
])
def test_auto_picks_the_method_from_device_and_placement(requested, cuda, shared, zero, packed, method):
    assert choose_method(requested, cuda=cuda, generator_shares_policy_gpu=shared, zero_stage=zero,
                         generators_share_gpus=packed) == method
    assert method in weight_sync.SYNC_METHODS


def test_auto_keeps_the_object_store_for_adapters_and_tensor_parallel_generators():
    assert choose_method("auto", cuda=True, generator_shares_policy_gpu=False, adapters=True) == "object_store"
    assert choose_method("auto", cuda=True, generator_shares_policy_gpu=True, tensor_parallel_size=2) == "object_store"


def test_buckets_hold_whole_tensors_in_order_and_respect_the_size():
    from promedical.actors.sync_collective import plan_buckets

    metas = [("a", (4, 4)), ("b", (8,)), ("c", (100,)), ("d", (2,)), ("e", (3, 3))]
    plan = plan_buckets(metas, bucket_bytes=96, dtype="float32")           # 24 floats per bucket
    assert [b.indices for b in plan.buckets] == [(0, 1), (2,), (3, 4)]   # 16+8 fit; + 100 does not
    assert [n for b in plan.buckets for n, _ in b.entries] == ["a", "b", "c", "d", "e"]
    assert plan.buckets[1].numel == 100                                     # a larger tensor goes alone
    assert plan.nbytes == 4 * (16 + 8 + 100 + 2 + 9)
    assert len(plan_buckets(metas, bucket_bytes=2**20, dtype="bfloat16").buckets) == 1
    with pytest.raises(ValueError, match="bucket_bytes=0"):
        plan_buckets(metas, bucket_bytes=0, dtype="float32")


def test_pack_and_unpack_round_trip_in_the_travel_dtype():
    import torch
    from promedical.actors.sync_collective import pack, plan_buckets, unpack

    tensors = [torch.randn(3, 5), torch.randn(7)]
    plan = plan_buckets([("x", (3, 5)), ("y", (7,))], bucket_bytes=2**20, dtype="bfloat16")
    flat = pack(tensors, torch.bfloat16, "cpu")
    assert flat.dtype == torch.bfloat16 and flat.numel() == 22
    (nx, x), (ny, y) = unpack(flat, plan.buckets[0])
    assert (nx, ny) == ("x", "y") and x.shape == (3, 5)
    assert torch.equal(y, tensors[1].to(torch.bfloat16))
