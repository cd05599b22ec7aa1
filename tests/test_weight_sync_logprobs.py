"""After a weight sync the generator's logprobs match the policy's own, and differ from before the sync."""
import numpy as np
import pyarrow as pa
import pytest

from promedical.deploy.build import generator_kwargs, policy_kwargs
from promedical.deploy.config import load_config

# fp32 on both sides; vLLM's CPU kernels and torch's differ only in summation order
TOLERANCE = 2e-3


@pytest.fixture(scope="module")
def actors(local_ray):
    import ray
    from promedical.actors.generator import Generator
    from promedical.actors.interfaces import PromptRequest
    from promedical.actors.models import resolve_model
    from promedical.actors.policy import Policy

    cfg = load_config("tiny", ["algo.lr=0.05", "algo.mini_batches=1"])
    path = resolve_model("tiny")
    policy = ray.remote(Policy).options(num_cpus=0.5).remote(**policy_kwargs(cfg, path))
    generator = ray.remote(Generator).options(num_cpus=0.5).remote(**generator_kwargs(cfg, path))
    requests = [PromptRequest(prompt_id=f"p{i}", group_id=i, messages=(("user", f"question {i} about fever"),))
                for i in range(cfg.rollout.prompts_per_step)]
    batch = ray.get(generator.generate.remote(requests, cfg.rollout.group_size))
    return ray, policy, generator, batch


def test_the_generator_computes_on_every_core_it_is_bound_to(actors):
    """Ray starts the 0.5-CPU generator with OMP_NUM_THREADS=1; the actor sets as many intra-op threads as
    its vLLM binding names (generator.omp_threads_bind=auto: the node's cores)."""
    from promedical.runtime.threads import node_cores

    ray, _, generator, _ = actors
    assert ray.get(generator.__ray_call__.remote(lambda self: __import__("torch").get_num_threads())) == node_cores()


def _policy_logprobs(ray, policy, batch):
    return ray.get(policy.logprobs.remote(batch))


def _generator_logprobs(ray, generator, batch):
    seqs = [p + r for p, r in zip(batch.column("prompt_ids").to_pylist(), batch.column("response_ids").to_pylist())]
    full = ray.get(generator.score_sequences.remote(seqs))
    lengths = batch.column("response_length").to_pylist()
    return [lp[len(lp) - n:] if n else [] for lp, n in zip(full, lengths)]


def _max_gap(a, b):
    return max(float(np.max(np.abs(np.subtract(x, y)))) for x, y in zip(a, b) if len(x))


def _training_batch(batch):
    n = batch.num_rows
    rng = np.random.default_rng(0)
    extra = {"advantage": pa.array(rng.standard_normal(n), pa.float32()),
             "ref_logprobs": batch.column("behaviour_logprobs"), "loss_mask": pa.array([True] * n)}
    return pa.RecordBatch.from_arrays(list(batch.columns) + list(extra.values()),
                                      names=batch.schema.names + list(extra))


def test_sampling_logprobs_match_policy_before_training(actors):
    ray, policy, generator, batch = actors
    behaviour = batch.column("behaviour_logprobs").to_pylist()
    assert _max_gap(behaviour, _policy_logprobs(ray, policy, batch)) < TOLERANCE


def test_sync_makes_generator_match_the_trained_policy(actors):
    ray, policy, generator, batch = actors
    ray.get(policy.train_step.remote(_training_batch(batch)))
    trained = _policy_logprobs(ray, policy, batch)
    stale = _generator_logprobs(ray, generator, batch)
    assert _max_gap(stale, trained) > 10 * TOLERANCE          # before the sync: old weights
    ray.get(generator.load_weights.remote(1, policy.export_weights.remote()))
    synced = _generator_logprobs(ray, generator, batch)
    assert _max_gap(synced, trained) < TOLERANCE              # after: the policy's own numbers
    assert ray.get(generator.version.remote()) == 1


def _syncer(method, policy, generator):
    from promedical.actors.groups import GeneratorGroup, PolicyGroup
    from promedical.actors.sync_collective import Rendezvous
    from promedical.actors.weight_sync import CollectiveSync, ObjectStoreSync, Syncer
    from promedical.runtime.distributed import free_port

    group, generators = PolicyGroup([policy], zero_stage=0, mini_batches=1), GeneratorGroup([generator])
    if method == "object_store":
        return Syncer(ObjectStoreSync(group, generators), timeout_s=120)
    # 64 KiB buckets: the tiny model's 1.6 MB travel in many buckets, its 256 KiB embedding alone in one
    spec = Rendezvous("127.0.0.1", free_port(), world_size=2, backend="gloo", timeout_s=120)
    return Syncer(CollectiveSync(group, generators, spec, bucket_bytes=64 * 2**10), timeout_s=120)


@pytest.mark.parametrize("method", ["object_store", "collective"])
def test_after_each_sync_the_generator_scores_as_the_policy(actors, method):
    """Two train-then-sync rounds per method: before each sync the generator is stale, after it its
    logprobs of the fixed batch are the policy's within TOLERANCE, and the group holds the version."""
    ray, policy, generator, batch = actors
    syncer = _syncer(method, policy, generator)
    for _ in range(2):
        ray.get(policy.train_step.remote(_training_batch(batch)))
        trained = _policy_logprobs(ray, policy, batch)
        assert _max_gap(_generator_logprobs(ray, generator, batch), trained) > 10 * TOLERANCE
        version = ray.get(generator.version.remote()) + 1
        syncer.wait(syncer.start(version))
        assert _max_gap(_generator_logprobs(ray, generator, batch), trained) < TOLERANCE
        assert ray.get(generator.version.remote()) == version
        assert syncer.method.generators.held == [version] and syncer.method.generators.version == version


def test_samples_read_their_prompt_from_the_cache_of_the_current_weights(actors):
    """The G samples of a prompt read its KV blocks from the prefix cache (prefilled once per generate
    call), and a weight sync empties that cache: after it, the samples' logprobs are the trained policy's,
    so no block computed with the old weights served them."""
    from promedical.actors.interfaces import PromptRequest

    ray, policy, generator, _ = actors
    long = [PromptRequest(prompt_id=f"long{i}", group_id=900 + i, messages=(("user", f"fever {i} and cough " * 40),))
            for i in range(4)]                                   # the tiny preset's prompts_per_step
    first = ray.get(generator.generate.remote(long, 8))          # caches the prompts under the old weights
    ray.get(policy.train_step.remote(_training_batch(first)))
    ray.get(generator.load_weights.remote(ray.get(generator.version.remote()) + 1, policy.export_weights.remote()))
    second = ray.get(generator.generate.remote(long, 8))
    assert len(second.column("prompt_ids")[0].as_py()) == 128            # max_prompt_tokens: four 32-token blocks
    assert ray.get(generator.cached_prompt_tokens.remote()) >= 4 * 64    # the samples read their prompt's blocks
    behaviour = second.column("behaviour_logprobs").to_pylist()
    assert _max_gap(behaviour, _policy_logprobs(ray, policy, second)) < TOLERANCE
