"""Asynchronous pipeline: the staleness bound holds row by row, k=0 is the synchronous loop, backpressure."""
import re
import sys
import threading
import time

import numpy as np
import pytest
from ray import cloudpickle as ray_cloudpickle

from promedical.actors.generator import Generator
from promedical.actors.interfaces import PromptRequest
from promedical.actors.policy import Policy
from promedical.deploy.build import build_roles, resolve_models
from promedical.deploy.config import load_config
from promedical.deploy.run import load_prompts, train
from promedical.rollout.advantages import ADVANTAGES
from promedical.rollout.prompts import PromptSource
from promedical.storage.metrics_log import iter_events
from promedical.storage.run_dir import RunDir
from promedical.storage.schema import TRAINING_FIELDS, columns_batch, merge_columns

ray_cloudpickle.register_pickle_by_value(sys.modules[__name__])   # instrumented classes go to workers

SETTINGS = ["rollout.prompts_per_step=2", "rollout.group_size=4", "rollout.max_new_tokens=12"]


def _run(tmp, name, steps, staleness):
    cfg = load_config("tiny", SETTINGS + [f"rollout.steps={steps}", f"rollout.max_staleness={staleness}"])
    return cfg, RunDir(train(cfg, tmp / name))


def test_no_trained_row_is_more_than_k_versions_old(tmp_path, local_ray):
    k = 2
    _, run = _run(tmp_path, "k2", steps=6, staleness=k)
    table = run.read_rollouts()
    staleness = np.asarray(table["trained_version"]) - np.asarray(table["policy_version"])
    assert staleness.max() <= k
    assert staleness.max() == k                       # generation really ran ahead
    assert (staleness >= 0).all()
    events = list(iter_events(run.metrics_path))
    assert max(e["staleness_max"] for e in events) == k
    assert all(e["rollouts_in_flight"] <= k * 2 * 4 for e in events)


def _hand_written_sync_loop(cfg, steps):
    """generate -> score + reference -> advantages -> train -> sync, one step after another."""
    import ray
    policy_path, reward_path = resolve_models(cfg)
    roles = build_roles(cfg, policy_path, reward_path)
    source = PromptSource(load_prompts(cfg), seed=cfg.run.seed, shuffle=cfg.data.shuffle)
    out = []
    for step in range(steps):
        prompts = source.next_batch(cfg.rollout.prompts_per_step)
        requests = [PromptRequest(r.prompt_id, gid, tuple((m.role, m.content) for m in r.messages))
                    for gid, r in prompts]
        generator, reward, reference = roles.generators.handles[0], roles.reward.handles[0], roles.reference.handles[0]
        gen = ray.get(generator.generate.remote(requests, cfg.rollout.group_size))
        rew = ray.get(reward.score.remote(gen, {r.prompt_id: r for _, r in prompts}))
        ref = ray.get(reference.logprobs.remote(gen))
        batch = merge_columns(gen, rew, ref)
        adv = ADVANTAGES[cfg.algo.advantage](batch.column("reward").to_numpy(), batch.column("group_id").to_numpy())
        batch = merge_columns(batch, columns_batch(TRAINING_FIELDS, {
            "advantage": adv, "trained_version": [step] * batch.num_rows, "step": [step] * batch.num_rows,
            "loss_mask": [True] * batch.num_rows}))
        policy = roles.policy.handles[0]
        report = ray.get(policy.train_step.remote(batch))
        ray.get(generator.load_weights.remote(step + 1, policy.export_weights.remote()))
        out.append({"reward_mean": float(np.mean(batch.column("reward").to_numpy())), **report})
    for group in (roles.policy, roles.reference, roles.reward, roles.generators):
        for handle in group.handles:
            ray.kill(handle)
    return out


def test_staleness_zero_equals_the_synchronous_loop(tmp_path, local_ray):
    cfg, run = _run(tmp_path, "k0", steps=3, staleness=0)
    pipeline = list(iter_events(run.metrics_path))
    reference = _hand_written_sync_loop(cfg, steps=3)
    for a, b in zip(pipeline, reference):
        for key in ("reward_mean", "loss", "kl", "clip_fraction", "grad_norm"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), key


class SlowPolicy(Policy):
    """A trainer slowed on purpose: generation is ~20x faster than training."""

    def train_step(self, batch, share=None):
        time.sleep(1.5)
        return super().train_step(batch, share)


class CountingGenerator(Generator):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls = []

    def generate(self, prompts, group_size):
        self.calls.append(time.time())
        return super().generate(prompts, group_size)

    def call_times(self):
        return self.calls


def test_backpressure_bounds_buffered_rollouts_with_a_slow_trainer(tmp_path, local_ray):
    import ray
    from promedical.rollout.loop import LoopState, run_loop
    from promedical.deploy.run import _settings

    k, steps = 1, 6
    cfg = load_config("tiny", SETTINGS + [f"rollout.steps={steps}", f"rollout.max_staleness={k}"])
    policy_path, reward_path = resolve_models(cfg)
    roles = build_roles(cfg, policy_path, reward_path,
                        role_classes={"policy": SlowPolicy, "generator": CountingGenerator})
    source = PromptSource(load_prompts(cfg), seed=0)
    trained_at, plasma = [], []
    done = threading.Event()

    address = ray.get_runtime_context().gcs_address    # this test's Ray, whatever else runs here

    def sample_plasma():
        from ray._private.internal_api import memory_summary
        while not done.is_set():
            found = re.search(r"Plasma memory usage (\d+) MiB", memory_summary(address, stats_only=True))
            plasma.append(int(found.group(1)) if found else -1)
            time.sleep(0.2)

    sampler = threading.Thread(target=sample_plasma, daemon=True)
    sampler.start()
    run_loop(roles, source, _settings(cfg), LoopState(), on_step=lambda *a: trained_at.append(time.time()))
    done.set()
    sampler.join()
    calls = ray.get(roles.generators.handles[0].call_times.remote())
    assert len(calls) == steps
    # when step s finished training, at most s + 1 + (k + 1) batches had been asked for
    for s, t in enumerate(trained_at):
        assert sum(c <= t for c in calls) <= s + 1 + k + 1
    assert plasma and min(plasma) >= 0, "the object-store sampler read nothing"
    assert max(plasma) < 64          # MiB: a few tiny batches and one weight export, never a backlog
    for group in (roles.policy, roles.reference, roles.reward, roles.generators):
        for handle in group.handles:
            ray.kill(handle)
