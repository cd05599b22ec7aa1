"""Data-parallel policy: one GRPO step on 2 DeepSpeed ranks (Ray actors, gloo) equals 1 rank on the same batch."""
import numpy as np
import pytest

from promedical.actors.groups import Columns, PolicyGroup, StepBatch
from promedical.actors.sharding import rank_shares
from promedical.deploy.build import policy_kwargs
from promedical.deploy.config import load_config
from promedical.runtime.distributed import free_port
from promedical.storage.schema import GENERATION_FIELDS, REFERENCE_FIELDS, TRAINING_FIELDS, columns_batch, \
    merge_columns

# fp32 on CPU: 2 ranks sum the same per-token terms in another order and average gradients over gloo.
# Adam's first step moves each weight by about lr * sign(g), so a weight whose gradient is ~0 could flip
# by 2 * lr = 0.02 on noise alone; both stages stay within these bounds (two mini-batches, lr 0.01).
RTOL, WEIGHT_ATOL = 1e-5, 1e-6


def _batch(groups=4, group_size=8, seed=0):
    """A scored batch of random token ids, as the tiny model's generators and reference would give it."""
    rng = np.random.default_rng(seed)
    cols = {f.name: [] for f in GENERATION_FIELDS}
    ref, adv = [], []
    for g in range(groups):
        prompt = rng.integers(10, 500, size=int(rng.integers(4, 12))).tolist()
        for k in range(group_size):
            n = int(rng.integers(1, 20))
            values = dict(prompt_id=f"p{g}", group_id=g, sample_index=k, prompt_ids=prompt,
                          response_ids=rng.integers(10, 500, size=n).tolist(), response_length=n, response_text="",
                          finish_reason="stop", behaviour_logprobs=(-rng.random(n) * 6).tolist(), policy_version=0,
                          generate_seconds=0.0, generator_replica=0)
            for key, v in values.items():
                cols[key].append(v)
            ref.append((-rng.random(n) * 6).tolist())
            adv.append(float(rng.normal()))
    n = groups * group_size
    return merge_columns(columns_batch(GENERATION_FIELDS, cols),
                         columns_batch(REFERENCE_FIELDS, {"ref_logprobs": ref, "reference_seconds": [0.0] * n}),
                         columns_batch(TRAINING_FIELDS, {"advantage": adv, "trained_version": [0] * n,
                                                         "step": [0] * n, "loss_mask": [True] * n}))


def _group(ray, kwargs, ranks):
    from promedical.actors.policy import Policy

    port = free_port()
    extra = (lambda r: {}) if ranks == 1 else \
        (lambda r: dict(rank=r, world_size=ranks, master_addr="127.0.0.1", master_port=port))
    handles = [ray.remote(Policy).options(num_cpus=0.25, max_concurrency=1).remote(**kwargs, **extra(r))
               for r in range(ranks)]
    return PolicyGroup(handles, zero_stage=kwargs["zero_stage"], mini_batches=kwargs["mini_batches"])


@pytest.mark.slow
@pytest.mark.parametrize("zero_stage", [2, 3])
def test_two_ranks_train_like_one(local_ray, zero_stage):
    import torch

    from promedical.actors.models import resolve_model

    ray = local_ray
    cfg = load_config("tiny", [f"trainer.zero_stage={zero_stage}", "algo.lr=0.01"])
    kwargs = policy_kwargs(cfg, resolve_model("tiny"))
    batch = _batch()
    summary = batch.select(["group_id", "response_length"])
    step = StepBatch([Columns([ray.put(batch)], np.arange(batch.num_rows), [batch.num_rows])], batch.num_rows, summary)
    results = {}
    for ranks in (1, 2):
        group = _group(ray, kwargs, ranks)
        report = group.train_step(step, seed=0)
        weights = ray.get(group.export_refs())
        results[ranks] = (report, {k: v.float() for k, v in weights})
        for h in group.handles:
            ray.kill(h)
    (one, w1), (two, w2) = results[1], results[2]
    for key in ("loss", "policy_loss", "kl", "grad_norm"):
        assert two[key] == pytest.approx(one[key], rel=RTOL), key
    assert one["grad_norm"] > 0
    for name, before in w1.items():
        torch.testing.assert_close(w2[name], before, atol=WEIGHT_ATOL, rtol=0, msg=name)
    # the step changed the weights (so equal weights are not two untouched copies)
    base = {k: v.float() for k, v in __import__("transformers").AutoModelForCausalLM.from_pretrained(
        resolve_model("tiny")).state_dict().items()}
    assert max(float((w1[k] - base[k]).abs().max()) for k in w1) > 1e-4


def test_rank_shares_split_every_mini_batch_evenly_in_whole_groups():
    group_ids = [g for g in range(8) for _ in range(4)]
    lengths = [1 + (i * 7) % 13 for i in range(32)]
    shares = rank_shares(group_ids, lengths, mini_batches=2, ranks=2, seed=3)
    single = rank_shares(group_ids, lengths, mini_batches=2, ranks=1, seed=3)[0]
    all_rows = sorted(r for rows, _ in shares for r in rows)
    assert all_rows == list(range(32))
    for m in range(2):
        # the two ranks' parts of mini-batch m are exactly the single rank's mini-batch m
        parts = [sorted(rows[i] for i in share.minis[m]) for rows, share in shares]
        assert sorted(parts[0] + parts[1]) == sorted(single[0][i] for i in single[1].minis[m])
        assert len(parts[0]) == len(parts[1]) == 8                          # 2 whole groups each
        for part in parts:
            assert len({group_ids[i] for i in part}) == 2
        assert shares[0][1].mini_tokens[m] == sum(lengths[i] for p in parts for i in p)
    with pytest.raises(ValueError, match="do not split evenly over 3 policy ranks"):
        rank_shares(group_ids, lengths, mini_batches=2, ranks=3, seed=0)
