"""Each GRPO-variant option end to end: `promedical train --config tiny --set KEY=VALUE --set rollout.steps=3`
exits 0 and RUN_DIR/metrics.msgpack holds the option's metrics, checked against their definitions.

Real runs (Ray, vLLM, DeepSpeed); options whose checks are independent share a run.
"""
import math
import subprocess
import sys

import numpy as np
import pytest

from promedical.rollout.advantages import grpo, rloo
from promedical.storage.metrics_log import iter_events
from promedical.storage.run_dir import RunDir

pytestmark = pytest.mark.slow

STEPS = 3
LR = 0.002                      # the tiny preset's algo.lr
EVERY_STEP = {"loss", "kl", "entropy", "lr", "clip_fraction", "ratio_outside_clip_fraction", "dual_clip_fraction",
              "grad_norm", "reward_mean", "zero_advantage_fraction"}


def _per_step(table, column):
    steps = np.asarray(table["step"])
    return [np.asarray(table[column].to_numpy(zero_copy_only=False))[steps == s] for s in range(STEPS)]


def check_rloo(events, table):
    for r, g, a in zip(*(_per_step(table, c) for c in ("reward", "group_id", "advantage"))):
        np.testing.assert_allclose(a, rloo(r, g), atol=1e-5)


def check_population_std(events, table):
    for r, g, a in zip(*(_per_step(table, c) for c in ("reward", "group_id", "advantage"))):
        np.testing.assert_allclose(a, grpo(r, g, std="population"), rtol=1e-5, atol=1e-5)


def check_clip(events, table):
    for e in events:
        assert 0 <= e["clip_fraction"] <= e["ratio_outside_clip_fraction"] + 1e-9 <= 1 + 1e-9


def check_dual_clip(events, table):
    check_clip(events, table)
    assert all(0 <= e["dual_clip_fraction"] <= 1 for e in events)


def check_loss(events, table):
    assert all(math.isfinite(e["loss"]) and math.isfinite(e["policy_loss"]) for e in events)


def check_dynamic_sampling(events, table):
    for e, adv, groups in zip(events, _per_step(table, "advantage"), _per_step(table, "group_id")):
        assert 1 <= e["sampling_rounds"] <= 4 and e["sampled_groups"] >= 4
        assert len(set(groups.tolist())) == 4 and adv.size == 4 * 8
        # every trained group has signal unless the rounds ran out and constant groups filled the batch
        constant = sum(bool((adv[groups == g] == 0).all()) for g in set(groups.tolist()))
        assert constant == e["filled_constant_groups"]
    assert sum(e["dropped_constant_groups"] for e in events) >= 1     # the tiny run has constant groups


def check_filter(events, table):
    for e in events:
        assert e["overlong_masked_fraction"] == pytest.approx(e["truncated_fraction"])
        if e["overlong_masked_fraction"] == 1.0:      # every row cut at the budget: nothing enters the loss
            assert e["loss"] == 0.0 and e["entropy"] == 0.0 and e["kl"] == 0.0
    # the tiny model rarely stops before 24 tokens: the filter must have masked most rows
    assert max(e["overlong_masked_fraction"] for e in events) > 0.5


def check_soft(events, table):
    for e, lengths in zip(events, _per_step(table, "response_length")):
        # tiny: max_new_tokens 24, default buffer 16 -> penalty min(0, (8 - len) / 16)
        assert e["overlong_penalty_mean"] == pytest.approx(np.minimum(0, (8 - lengths) / 16).mean(), abs=1e-6)


def check_cosine(events, table):
    # 3 steps, no warmup: 0.5 * (1 + cos(pi * k / 3)) = 1, 0.75, 0.25
    assert [e["lr"] for e in events] == pytest.approx([LR, 0.75 * LR, 0.25 * LR])


def check_warmup(events, table):
    # warmup 2: (k + 1) / 3 for k < 2, then 1
    assert [e["lr"] for e in events] == pytest.approx([LR / 3, 2 * LR / 3, LR])


def check_lexicographic(events, table):
    for r, g in zip(_per_step(table, "reward"), _per_step(table, "group_id")):
        assert ((0 <= r) & (r <= 1)).all()
        np.testing.assert_allclose(r * 7 * 2, np.round(r * 7 * 2), atol=1e-4)   # mean ranks / (G - 1)
        for k in set(g.tolist()):
            assert r[g == k].mean() == pytest.approx(0.5, abs=1e-6)           # ranks 0..7 average 3.5


def check_gdpo(events, table):
    for r, g in zip(_per_step(table, "reward"), _per_step(table, "group_id")):
        for k in set(g.tolist()):
            assert abs(r[g == k].sum()) < 1e-3                                # a weighted sum of z-scores


# Each run sets several options whose checks do not interfere (the suite's time: 6 runs, not 13);
# every option is set with --set and checked against its definition in one of them.
RUNS = [
    (("algo.advantage=rloo", check_rloo), ("algo.clip_eps_low=0.1", check_clip),
     ("algo.lr_schedule=cosine", check_cosine)),
    (("algo.std=population", check_population_std), ("algo.clip_eps_high=0.28", check_clip),
     ("algo.warmup_steps=2", check_warmup)),
    (("algo.dual_clip=3.0", check_dual_clip), ("algo.loss_agg=seq_mean_token_sum_norm", check_loss),
     ("reward.aggregator=lexicographic", check_lexicographic)),
    (("rollout.dynamic_sampling=true", check_dynamic_sampling),),
    (("rollout.overlong=filter", check_filter),),
    (("rollout.overlong=soft", check_soft), ("reward.aggregator=gdpo", check_gdpo)),
]


def train(tmp_path, options: list[str]) -> RunDir:
    run_dir = tmp_path / "run"
    sets = [arg for option in options for arg in ("--set", option)]
    proc = subprocess.run([sys.executable, "-m", "promedical.deploy.cli", "train", "--config", "tiny", *sets,
                           "--set", f"rollout.steps={STEPS}", "--run-dir", str(run_dir)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return RunDir(run_dir)


@pytest.mark.parametrize("run", RUNS, ids=["+".join(o for o, _ in run) for run in RUNS])
def test_options_train_and_log_their_metrics(tmp_path, run):
    options = [option for option, _ in run]
    result = train(tmp_path, options)
    events = [e for e in iter_events(result.metrics_path) if "event" not in e]
    assert [e["step"] for e in events] == list(range(STEPS))
    for e in events:
        assert EVERY_STEP <= set(e), EVERY_STEP - set(e)
        assert e["lr"] > 0 and (e["entropy"] > 0 or "rollout.overlong=filter" in options)
    for option, check in run:
        check(events, result.read_rollouts())
