"""Each GRPO-variant option end to end: a tiny run with `KEY=VALUE` (as `--set` gives it) and rollout.steps=3
finishes and RUN_DIR/metrics.msgpack holds the option's metrics, checked against their definitions.

The loss options are checked from what entered the loss: each run saves the per-token loss inputs
(run.loss_inputs_dir: log-ratios, IS and reference log-ratios, mask, advantages), the test recomputes
the loss, the KL and the clip fractions from them with the configured options, by the definitions
written here, and compares with the logged values; it also checks that the option's default would
have logged something else, so a run where the option never reached the loss fails.

Real runs (Ray, vLLM, DeepSpeed); options whose checks are independent share a run.
"""
import math

import numpy as np
import pytest
import yaml

from promedical.actors.loss_inputs import read_loss_inputs
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


LOSS_METRICS = ("loss", "policy_loss", "kl", "clip_fraction", "dual_clip_fraction", "ratio_outside_clip_fraction")
# what the loss uses when an option is left unset (AlgoConfig's defaults)
DEFAULTS = {"clip_eps_low": None, "clip_eps_high": None, "dual_clip": None, "loss_agg": "token_mean",
            "kl_estimator": "k3"}


def _kl(x, estimator):
    """KL estimate per token from x = log(pi / ref)."""
    if estimator == "k1":
        return x
    if estimator == "k2":
        return 0.5 * x ** 2
    y = np.clip(-x, -20, 20)
    return np.exp(y) - y - 1


def _aggregate(v, mask, token_row, rows, how, norm):
    """One micro-batch's aggregate of per-token values `v` (its tokens only) over its rows."""
    if how == "token_mean":
        return (v * mask).sum() / max(mask.sum(), 1.0)
    index = np.searchsorted(rows, token_row)
    sums, counts = np.bincount(index, v * mask, len(rows)), np.bincount(index, mask, len(rows))
    if how in ("seq_mean_token_mean", "seq_mean"):
        return (sums / np.maximum(counts, 1.0)).mean()
    return sums.mean() / (norm if how == "seq_mean_token_sum_norm" else 1.0)


def recompute_loss(d, algo, rollout):
    """The step's logged loss values from its loss inputs `d`, for the options in `algo` / `rollout`."""
    low = algo["clip_eps"] if algo["clip_eps_low"] is None else algo["clip_eps_low"]
    high = algo["clip_eps"] if algo["clip_eps_high"] is None else algo["clip_eps_high"]
    row, mask = d["token_row"], d["mask"].astype(np.float64)
    adv, ratio = d["row_advantage"][row].astype(np.float64), np.exp(d["log_ratio"].astype(np.float64))
    unclipped, clipped = -ratio * adv, -np.clip(ratio, 1 - low, 1 + high) * adv
    per_token, dual = np.maximum(unclipped, clipped), np.zeros(ratio.shape, bool)
    if algo["dual_clip"] is not None:
        cap = -algo["dual_clip"] * adv
        dual = (adv < 0) & (per_token > cap)
        per_token = np.where(adv < 0, np.minimum(per_token, cap), per_token)
    per_token = per_token * np.minimum(np.exp(d["log_is"].astype(np.float64)), rollout["tis_cap"])
    kl = _kl(d["log_ref_ratio"].astype(np.float64), algo["kl_estimator"])
    flags = {"clip_fraction": clipped > unclipped, "dual_clip_fraction": dual,
             "ratio_outside_clip_fraction": (ratio < 1 - low) | (ratio > 1 + high)}
    out = dict.fromkeys(LOSS_METRICS, 0.0)
    how, minis = algo["loss_agg"], np.unique(d["row_mini"])
    for m in minis:
        in_mini = np.isin(row, np.nonzero(d["row_mini"] == m)[0])
        mini_tokens, mini_rows = max(mask[in_mini].sum(), 1.0), int((d["row_mini"] == m).sum())
        for u in np.unique(d["row_micro"][d["row_mini"] == m]):
            rows = np.nonzero(d["row_micro"] == u)[0]
            t = np.isin(row, rows)
            part = mask[t].sum() / mini_tokens if how == "token_mean" else len(rows) / mini_rows
            out["policy_loss"] += part * _aggregate(per_token[t], mask[t], row[t], rows, how, rollout["max_new_tokens"])
            out["kl"] += part * _aggregate(kl[t], mask[t], row[t], rows, how, rollout["max_new_tokens"])
            for key, f in flags.items():
                out[key] += part * (f[t] * mask[t]).sum() / max(mask[t].sum(), 1.0)
    out = {k: v / len(minis) for k, v in out.items()}
    out["loss"] = out["policy_loss"] + algo["kl_coef"] * out["kl"]
    return out


def check_loss_inputs(events, table, run_dir, options):
    """Every run: the logged loss values are the loss recomputed from its inputs with the configured
    options; for each loss option set, its default would have given other values."""
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    algo, rollout = config["algo"], config["rollout"]
    inputs = [read_loss_inputs(run_dir / "loss_inputs" / f"step-{s:04d}-rank-0.npz") for s in range(STEPS)]
    for e, d, groups, finish in zip(events, inputs, _per_step(table, "group_id"), _per_step(table, "finish_reason")):
        assert (d["row_group_id"] == groups[d["row_index"]]).all()       # the inputs' rows are the stored rows
        cut, rows = finish[d["row_index"]] == "length", len(d["row_index"])
        kept, has_tokens = np.zeros(rows), np.bincount(d["token_row"], minlength=rows) > 0
        np.maximum.at(kept, d["token_row"], d["mask"])
        if rollout["overlong"] == "filter":           # rows cut at the budget have no loss tokens, the rest all
            assert (kept == np.where(cut, 0.0, 1.0))[has_tokens].all() and cut.any()
        got = recompute_loss(d, algo, rollout)
        for key in LOSS_METRICS:
            assert e[key] == pytest.approx(got[key], rel=1e-4, abs=1e-6), (e["step"], key)
    for option in options:
        section, key = option.split("=")[0].split(".")
        if section == "algo" and key in DEFAULTS:
            unset = {**algo, key: DEFAULTS[key]}
            other = [recompute_loss(d, unset, rollout) for d in inputs]
            assert any(e[k] != pytest.approx(o[k], rel=1e-3, abs=1e-5) for e, o in zip(events, other)
                       for k in LOSS_METRICS), f"{option}: the run's data cannot tell it from its default"


def check_clip(events, table):
    for e in events:
        assert 0 <= e["clip_fraction"] <= e["ratio_outside_clip_fraction"] + 1e-9 <= 1 + 1e-9
        assert math.isfinite(e["loss"])


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
    for e, lengths, r, g, a in zip(events, *(_per_step(table, c) for c in ("response_length", "reward", "group_id",
                                                                            "advantage"))):
        # tiny: max_new_tokens 24, default buffer 16 -> penalty min(0, (8 - len) / 16)
        penalty = np.minimum(0, (8 - lengths) / 16)
        assert e["overlong_penalty_mean"] == pytest.approx(penalty.mean(), abs=1e-6)
        np.testing.assert_allclose(a, grpo(r + penalty, g), rtol=1e-5, atol=1e-5)   # the penalty reached the loss


def check_cosine(events, table):
    # 3 steps, no warmup: 0.5 * (1 + cos(pi * k / 3)) = 1, 0.75, 0.25
    assert [e["lr"] for e in events] == pytest.approx([LR, 0.75 * LR, 0.25 * LR])


def check_warmup(events, table):
    # warmup 2: (k + 1) / 3 for k < 2, then 1
    assert [e["lr"] for e in events] == pytest.approx([LR / 3, 2 * LR / 3, LR])


def check_held_out_eval(events, table):
    # run.eval_every=2 on the 8 builtin:tiny prompts that are not trained on: after the second step
    assert [e["step"] for e in events if "eval/s1" in e] == [1]
    event = events[1]
    assert event["eval/n"] == 8 and event["eval/invalid_verdicts"] == 0
    assert 0.0 <= event["eval/s1_low"] <= event["eval/s1"] <= event["eval/s1_high"] <= 1.0
    assert set(table["prompt_id"].to_pylist()).isdisjoint(r.prompt_id for r in _tiny_records()[TRAINED:])


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


# Each run sets several options whose checks do not interfere (the suite's time: 4 runs, not 13);
# every option is set with --set and checked against its definition in one of them.
# Every run also checks its loss against its saved inputs (check_loss_inputs). The tiny run's second
# mini-batch has ratios in about [0.5, 1.7]; dual_clip=1.3 (not the usual 3) caps some of them.
# overlong=filter masks most rows of the loss, so it shares a run with options that leave the loss alone.
RUNS = [
    (("algo.advantage=rloo", check_rloo), ("algo.clip_eps_low=0.1", check_clip),
     ("algo.lr_schedule=cosine", check_cosine), ("algo.kl_estimator=k1", check_clip),
     ("reward.aggregator=lexicographic", check_lexicographic)),
    (("algo.std=population", check_population_std), ("algo.clip_eps_high=0.28", check_clip),
     ("algo.warmup_steps=2", check_warmup), ("run.eval_every=2", check_held_out_eval)),
    (("rollout.dynamic_sampling=true", check_dynamic_sampling), ("rollout.overlong=filter", check_filter)),
    (("algo.dual_clip=1.3", check_clip), ("algo.loss_agg=seq_mean_token_sum_norm", check_clip),
     ("rollout.overlong=soft", check_soft), ("reward.aggregator=gdpo", check_gdpo)),
]


TRAINED = 24      # run.eval_every needs held-out prompts: the first 24 builtin:tiny prompts train, the other 8 not


def _tiny_records():
    from promedical.deploy.run import prompts_path
    from promedical.reward.rubric_io import load_records

    return load_records(prompts_path("builtin:tiny"))


def held_out_split(tmp_path) -> list[str]:
    """The `--set`s that train on the first TRAINED builtin:tiny prompts and evaluate on the rest."""
    from promedical.reward.rubric_io import save_records

    records = _tiny_records()
    save_records(records[:TRAINED], tmp_path / "train.jsonl")
    save_records(records[TRAINED:], tmp_path / "heldout.jsonl")
    return [f"data.prompts={tmp_path / 'train.jsonl'}", f"run.eval_prompts={tmp_path / 'heldout.jsonl'}"]


def train(tmp_path, options: list[str]) -> RunDir:
    """The options' run, in this process on the module's Ray (each run starts and ends its own actors)."""
    from promedical.deploy.config import load_config
    from promedical.deploy.run import train as run_training

    run_dir = tmp_path / "run"
    split = held_out_split(tmp_path) if any(o.startswith("run.eval_every=") for o in options) else []
    cfg = load_config("tiny", [*options, *split, f"rollout.steps={STEPS}", f"run.loss_inputs_dir={run_dir}/loss_inputs"])
    return RunDir(run_training(cfg, run_dir))


@pytest.mark.parametrize("run", RUNS, ids=["+".join(o for o, _ in run) for run in RUNS])
def test_options_train_and_log_their_metrics(tmp_path, local_ray, run):
    options = [option for option, _ in run]
    result = train(tmp_path, options)
    events = [e for e in iter_events(result.metrics_path) if "event" not in e]
    assert [e["step"] for e in events] == list(range(STEPS))
    for e in events:
        assert EVERY_STEP <= set(e), EVERY_STEP - set(e)
        assert e["lr"] > 0 and (e["entropy"] > 0 or "rollout.overlong=filter" in options)
    table = result.read_rollouts()
    for option, check in run:
        check(events, table)
    check_loss_inputs(events, table, result.root, options)
