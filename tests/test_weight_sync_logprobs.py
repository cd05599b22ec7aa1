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
