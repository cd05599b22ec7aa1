"""Bad values never reach the weights: a real DeepSpeed policy (ZeRO-0, 2 and 3, one Ray actor each)
given NaN/inf logprobs, NaN advantages and non-finite micro-batch losses."""
import dataclasses
import sys

import numpy as np
import pytest
import torch
from ray import cloudpickle as ray_cloudpickle

from promedical.actors.policy import Policy
from promedical.deploy.build import policy_kwargs
from promedical.deploy.config import load_config
from promedical.storage.schema import GENERATION_FIELDS, REFERENCE_FIELDS, TRAINING_FIELDS, columns_batch, \
    merge_columns

ray_cloudpickle.register_pickle_by_value(sys.modules[__name__])   # the instrumented class goes to workers

NAN, INF = float("nan"), float("inf")
# 2 groups of 4 rows, one group per micro-batch; weight decay 0, so zero gradients on a fresh Adam move nothing
SETTINGS = ["rollout.prompts_per_step=2", "rollout.group_size=4", "algo.micro_batch_size=4", "algo.mini_batches=1",
            "algo.lr=0.01", "algo.weight_decay=0.0"]


class NanLossPolicy(Policy):
    """A policy whose chosen micro-batch losses (counted from the last `poison` call) are NaN, still
    joined to the graph: a backward of them would put NaN into every gradient."""

    def poison(self, calls: list[int]) -> None:
        import promedical.actors.losses as losses
        real = getattr(losses, "_unpoisoned", losses.grpo_loss)
        losses._unpoisoned, count = real, iter(range(10**6))

        def grpo_loss(*args, **kwargs):
            terms = real(*args, **kwargs)
            return dataclasses.replace(terms, loss=terms.loss * NAN) if next(count) in calls else terms
        losses.grpo_loss = grpo_loss


def _batch(*, behaviour_fix=None, ref_fix=None, loss_mask=None, adv_fix=None, seed=0):
    rng = np.random.default_rng(seed)
    cols = {f.name: [] for f in GENERATION_FIELDS}
    ref, adv = [], []
    prompts = [rng.integers(10, 500, size=6).tolist() for _ in range(2)]
    for row in range(8):
        n = int(rng.integers(3, 10))
        values = dict(prompt_id=f"p{row // 4}", group_id=row // 4, sample_index=row % 4,
                      prompt_ids=prompts[row // 4], response_ids=rng.integers(10, 500, size=n).tolist(),
                      response_length=n, response_text="", finish_reason="stop",
                      behaviour_logprobs=(-rng.random(n) * 6).tolist(), policy_version=0, generate_seconds=0.0,
                      generator_replica=0)
        for key, v in values.items():
            cols[key].append(v)
        ref.append((-rng.random(n) * 6).tolist())
        adv.append(float(rng.normal()))
    for fix, column in ((behaviour_fix, cols["behaviour_logprobs"]), (ref_fix, ref), (adv_fix, adv)):
        for row, value in (fix or {}).items():
            if isinstance(column[row], list):
                column[row][1] = value
            else:
                column[row] = value
    return merge_columns(columns_batch(GENERATION_FIELDS, cols),
                         columns_batch(REFERENCE_FIELDS, {"ref_logprobs": ref, "reference_seconds": [0.0] * 8}),
                         columns_batch(TRAINING_FIELDS, {"advantage": adv, "trained_version": [0] * 8, "step": [0] * 8,
                                                         "loss_mask": loss_mask or [True] * 8}))


def _weights(ray, handle):
    return {k: v.float() for k, v in ray.get(handle.export_weights.remote())}


def _all_finite(weights):
    return all(bool(torch.isfinite(v).all()) for v in weights.values())


@pytest.mark.slow
@pytest.mark.parametrize("zero_stage", [0, 2, 3])
def test_bad_rows_and_bad_losses_never_reach_the_weights(local_ray, zero_stage):
    from promedical.actors.models import resolve_model
    from transformers import AutoModelForCausalLM

    ray = local_ray
    kwargs = policy_kwargs(load_config("tiny", SETTINGS + [f"trainer.zero_stage={zero_stage}"]), resolve_model("tiny"))
    start = lambda: ray.remote(NanLossPolicy).options(num_cpus=0.25, max_concurrency=1).remote(**kwargs)  # noqa
    base = {k: v.float() for k, v in AutoModelForCausalLM.from_pretrained(resolve_model("tiny")).state_dict().items()}
    a, b, c = start(), start(), start()
    # a: row 1 masked by the driver with a NaN advantage, row 2 NaN behaviour, row 5 -inf reference;
    # b: the same rows masked by the driver, their values finite garbage: both must train alike
    nan_batch = _batch(behaviour_fix={2: NAN}, ref_fix={5: -INF}, adv_fix={1: NAN},
                       loss_mask=[True, False] + [True] * 6)
    garbage = _batch(behaviour_fix={2: -50.0}, ref_fix={5: -40.0}, adv_fix={1: 7.0},
                     loss_mask=[True, False, False, True, True, False, True, True])
    ra, rb = ray.get([a.train_step.remote(nan_batch), b.train_step.remote(garbage)])
    assert (ra["nonfinite_logprob_rows"], ra["masked_rows"], ra["skipped_microbatches"]) == (2.0, 3.0, 0.0)
    assert (rb["nonfinite_logprob_rows"], rb["masked_rows"]) == (0.0, 3.0)
    assert all(np.isfinite(v) for v in ra.values()) and ra["grad_norm"] > 0
    assert ra["loss"] == rb["loss"]
    wa, wb = _weights(ray, a), _weights(ray, b)
    assert _all_finite(wa)
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name   # the masked rows' values had no effect at all
    assert max(float((wa[k] - base[k]).abs().max()) for k in wa) > 1e-4

    # c: every micro-batch loss NaN -> both skipped with exactly zero gradients: a fresh Adam moves nothing
    ray.get(c.poison.remote([0, 1]))
    rc = ray.get(c.train_step.remote(_batch()))
    assert (rc["skipped_microbatches"], rc["microbatches"]) == (2.0, 2.0)
    assert all(np.isfinite(v) for v in rc.values())
    wc = _weights(ray, c)
    for name in wc:
        assert torch.equal(wc[name], base[name]), name
    # then one of two NaN: skipped, the other micro-batch trains, the weights stay finite
    ray.get(c.poison.remote([0]))
    rc = ray.get(c.train_step.remote(_batch(seed=1)))
    assert (rc["skipped_microbatches"], rc["microbatches"]) == (1.0, 2.0) and np.isfinite(rc["loss"])
    wc = _weights(ray, c)
    assert _all_finite(wc) and max(float((wc[k] - base[k]).abs().max()) for k in wc) > 1e-4
    for handle in (a, b, c):
        ray.kill(handle)


@pytest.mark.slow
@pytest.mark.parametrize("zero_stage", [2, 3])
def test_ranks_skip_a_micro_batch_together(local_ray, zero_stage):
    """2 ranks, one micro-batch each; only rank 0's loss is NaN. Both must skip it (DeepSpeed's gradient
    reductions must line up): no hang, both counted, and with nothing trained a fresh Adam moves nothing."""
    from promedical.actors.groups import Columns, PolicyGroup, StepBatch
    from promedical.actors.models import resolve_model
    from promedical.runtime.distributed import free_port
    from transformers import AutoModelForCausalLM

    ray = local_ray
    kwargs = policy_kwargs(load_config("tiny", SETTINGS + [f"trainer.zero_stage={zero_stage}"]), resolve_model("tiny"))
    port = free_port()
    handles = [ray.remote(NanLossPolicy).options(num_cpus=0.25, max_concurrency=1).remote(
        **kwargs, rank=r, world_size=2, master_addr="127.0.0.1", master_port=port) for r in range(2)]
    group = PolicyGroup(handles, zero_stage=zero_stage, mini_batches=1, timeout_s=300)
    ray.get(handles[0].poison.remote([0]))
    batch = _batch()
    step = StepBatch([Columns([ray.put(batch)], np.arange(batch.num_rows), [batch.num_rows])], batch.num_rows,
                     batch.select(["group_id", "response_length"]))
    report = group.train_step(step, seed=0)
    assert (report["skipped_microbatches"], report["microbatches"]) == (2.0, 2.0)
    assert all(np.isfinite(v) for v in report.values())
    base = {k: v.float() for k, v in AutoModelForCausalLM.from_pretrained(resolve_model("tiny")).state_dict().items()}
    weights = {k: v.float() for k, v in ray.get(group.export_refs())}
    for name in weights:
        assert torch.equal(weights[name], base[name]), name
    for handle in handles:
        ray.kill(handle)
