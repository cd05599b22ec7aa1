"""End to end on the tiny preset: real Ray, vLLM, DeepSpeed and Arrow; the loop learns."""
import numpy as np
import pytest

from promedical.deploy.config import load_config
from promedical.storage.metrics_log import iter_events
from promedical.storage.run_dir import RunDir
from promedical.storage.schema import ROLLOUT_SCHEMA

REQUIRED_METRICS = {
    "step", "policy_version", "reward_mean", "reward_std", "s1_mean", "s2_mean", "s3_mean", "veto_rate",
    "kl", "loss", "clip_fraction", "response_length_mean", "tokens_per_s", "time_generate", "time_score",
    "time_reference", "time_train", "time_sync", "time_step", "staleness_max", "grad_norm"}


@pytest.fixture(scope="module")
def tiny_run(tiny_cli_run):
    """The session's tiny CLI run (conftest), shared with the CLI/sink tests: (config, run, steps)."""
    return load_config("tiny", tiny_cli_run.sets), RunDir(tiny_cli_run.run_dir), tiny_cli_run.steps


def test_run_dir_holds_resolved_config_metrics_and_rollouts(tiny_run):
    cfg, run, steps = tiny_run
    from promedical.deploy.auto_dtypes import resolve_auto_dtypes
    saved = load_config(str(run.config_path))
    assert saved == resolve_auto_dtypes(cfg)     # every `auto` dtype concrete, and `resolved:` says what it became
    assert saved.resolved and "auto" not in {saved.model.train_dtype, saved.reward.dtype, saved.generator.dtype}
    events = list(iter_events(run.metrics_path))
    assert [e["step"] for e in events] == list(range(steps))
    assert [e["policy_version"] for e in events] == list(range(1, steps + 1))
    for event in events:
        assert REQUIRED_METRICS <= set(event), REQUIRED_METRICS - set(event)
        assert event["tokens_per_s"] > 0 and event["time_train"] > 0
    table = run.read_rollouts()
    assert table.schema.equals(ROLLOUT_SCHEMA)
    rows = cfg.rollout.prompts_per_step * cfg.rollout.group_size
    assert table.num_rows == steps * rows
    # synchronous preset: every row trained by the version that generated it
    assert (np.asarray(table["trained_version"]) == np.asarray(table["policy_version"])).all()
    lengths = np.asarray(table["response_length"])
    assert all(len(x) == n for x, n in zip(table["behaviour_logprobs"].to_pylist(), lengths))
    assert all(len(x) == n for x, n in zip(table["ref_logprobs"].to_pylist(), lengths))
    assert len(set(table["group_id"].to_pylist())) == steps * cfg.rollout.prompts_per_step


def test_the_loop_learns_the_rule_reward(tiny_run):
    _, run, _ = tiny_run
    rewards = [e["reward_mean"] for e in iter_events(run.metrics_path)]
    early, late = np.mean(rewards[:2]), np.mean(rewards[-2:])
    assert late > early + 0.05, rewards


def test_kl_grows_from_zero_as_the_policy_moves(tiny_run):
    _, run, _ = tiny_run
    kls = [e["kl"] for e in iter_events(run.metrics_path)]
    assert kls[-1] > kls[0] >= 0


def test_eval_every_needs_held_out_prompts():
    from promedical.errors import UserError
    with pytest.raises(UserError, match="run.eval_every=2: must be >= 0, and > 0 needs run.eval_prompts"):
        load_config("tiny", ["run.eval_every=2"])
