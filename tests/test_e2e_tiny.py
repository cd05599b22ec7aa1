"""End to end on the tiny preset: real Ray, vLLM, DeepSpeed and Arrow; the loop learns."""
import numpy as np
import pytest

from promedical.deploy.config import load_config
from promedical.storage.metrics_log import iter_events
from promedical.storage.run_dir import RunDir
from promedical.storage.schema import ROLLOUT_SCHEMA

STEPS = 8
REQUIRED_METRICS = {
    "step", "policy_version", "reward_mean", "reward_std", "s1_mean", "s2_mean", "s3_mean", "veto_rate",
    "kl", "loss", "clip_fraction", "response_length_mean", "tokens_per_s", "time_generate", "time_score",
    "time_reference", "time_train", "time_sync", "time_step", "staleness_max", "grad_norm"}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, local_ray):
    from promedical.deploy.run import train

    cfg = load_config("tiny", [f"rollout.steps={STEPS}"])
    run_dir = tmp_path_factory.mktemp("tiny") / "run"
    train(cfg, run_dir)
    return cfg, RunDir(run_dir)


def test_run_dir_holds_resolved_config_metrics_and_rollouts(tiny_run):
    cfg, run = tiny_run
    from promedical.deploy.auto_dtypes import resolve_auto_dtypes
    saved = load_config(str(run.config_path))
    assert saved == resolve_auto_dtypes(cfg)     # every `auto` dtype concrete, and `resolved:` says what it became
    assert saved.resolved and "auto" not in {saved.model.train_dtype, saved.reward.dtype, saved.generator.dtype}
    events = list(iter_events(run.metrics_path))
    assert [e["step"] for e in events] == list(range(STEPS))
    assert [e["policy_version"] for e in events] == list(range(1, STEPS + 1))
    for event in events:
        assert REQUIRED_METRICS <= set(event), REQUIRED_METRICS - set(event)
        assert event["tokens_per_s"] > 0 and event["time_train"] > 0
    table = run.read_rollouts()
    assert table.schema.equals(ROLLOUT_SCHEMA)
    rows = cfg.rollout.prompts_per_step * cfg.rollout.group_size
    assert table.num_rows == STEPS * rows
    # synchronous preset: every row trained by the version that generated it
    assert (np.asarray(table["trained_version"]) == np.asarray(table["policy_version"])).all()
    lengths = np.asarray(table["response_length"])
    assert all(len(x) == n for x, n in zip(table["behaviour_logprobs"].to_pylist(), lengths))
    assert all(len(x) == n for x, n in zip(table["ref_logprobs"].to_pylist(), lengths))
    assert len(set(table["group_id"].to_pylist())) == STEPS * cfg.rollout.prompts_per_step


def test_the_loop_learns_the_rule_reward(tiny_run):
    _, run = tiny_run
    rewards = [e["reward_mean"] for e in iter_events(run.metrics_path)]
    early, late = np.mean(rewards[:2]), np.mean(rewards[-2:])
    assert late > early + 0.05, rewards


def test_kl_grows_from_zero_as_the_policy_moves(tiny_run):
    _, run = tiny_run
    kls = [e["kl"] for e in iter_events(run.metrics_path)]
    assert kls[-1] > kls[0] >= 0


def test_held_out_evaluation_joins_the_metric_stream(tmp_path, local_ray):
    from promedical.deploy.run import train

    from promedical.deploy.run import prompts_path
    from promedical.reward.rubric_io import load_records, save_records

    records = load_records(prompts_path("builtin:tiny"))      # held-out prompts must not be trained on
    save_records(records[:24], tmp_path / "train.jsonl")
    save_records(records[24:], tmp_path / "heldout.jsonl")
    cfg = load_config("tiny", ["rollout.steps=3", "run.eval_every=2", f"data.prompts={tmp_path / 'train.jsonl'}",
                               f"run.eval_prompts={tmp_path / 'heldout.jsonl'}"])
    events = list(iter_events(RunDir(train(cfg, tmp_path / "run")).metrics_path))
    with_eval = [e["step"] for e in events if "eval/s1" in e]
    assert with_eval == [1]                                   # every 2 steps: after the second
    event = events[1]
    assert event["eval/n"] == 8 and event["eval/invalid_verdicts"] == 0
    assert 0.0 <= event["eval/s1_low"] <= event["eval/s1"] <= event["eval/s1_high"] <= 1.0


def test_eval_every_needs_held_out_prompts():
    from promedical.errors import UserError
    with pytest.raises(UserError, match="run.eval_every=2: must be >= 0, and > 0 needs run.eval_prompts"):
        load_config("tiny", ["run.eval_every=2"])
