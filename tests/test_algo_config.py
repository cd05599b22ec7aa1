"""GRPO-variant config keys: defaults, bad values named in one line, exit 2 from the CLI before any actor."""
import subprocess
import sys

import pytest

from promedical.deploy.build import loss_settings, policy_kwargs, reward_kwargs
from promedical.deploy.config import clip_bounds, load_config
from promedical.errors import UserError


def test_defaults_match_the_readme_table():
    cfg = load_config("tiny")
    a, r = cfg.algo, cfg.rollout
    assert (a.advantage, a.std, a.loss_agg, a.lr_schedule, a.warmup_steps) == ("grpo", "sample", "token_mean",
                                                                             "constant", 0)
    assert clip_bounds(a) == (0.2, 0.2) and a.dual_clip is None
    assert (r.dynamic_sampling, r.max_sampling_rounds, r.overlong, r.overlong_buffer) == (False, 4, "none", 16)
    assert (cfg.reward.aggregator, cfg.reward.lam, cfg.reward.gdpo_weights) == ("promedical", 2.0, [1.0, 1.0, 1.0])


def test_asymmetric_keys_override_the_symmetric_shorthand():
    cfg = load_config("tiny", ["algo.clip_eps_high=0.28", "algo.dual_clip=3", "rollout.overlong=filter",
                               "algo.loss_agg=seq_mean_token_sum_norm", "algo.lr_schedule=cosine"])
    s = loss_settings(cfg)
    assert (s.clip_eps_low, s.clip_eps_high, s.dual_clip, s.mask_truncated) == (0.2, 0.28, 3.0, True)
    assert s.norm == cfg.rollout.max_new_tokens
    kwargs = policy_kwargs(cfg, "model")
    assert kwargs["schedule"].name == "cosine" and kwargs["schedule"].total_steps == cfg.rollout.steps
    assert reward_kwargs(load_config("tiny", ["reward.gdpo_weights=[1, 0.5, 2]"]), None)["shape"].gdpo_weights == (
        1.0, 0.5, 2.0)


@pytest.mark.parametrize("overrides, fragment", [
    (["algo.clip_eps_low=0.3", "algo.clip_eps_high=0.2"],
     "algo.clip_eps_low=0.3 > algo.clip_eps_high=0.2: clip-higher needs low <= high"),
    (["algo.clip_eps_low=0.3"], "algo.clip_eps_low=0.3 > algo.clip_eps_high=0.2"),
    (["algo.clip_eps_low=1.5", "algo.clip_eps_high=2"], "algo.clip_eps_low=1.5: must be in (0, 1)"),
    (["algo.dual_clip=0.5"], "algo.dual_clip=0.5: must be > 1"),
    (["algo.warmup_steps=-1"], "algo.warmup_steps=-1: must be >= 0"),
    (["algo.lr_schedule=step"], "algo.lr_schedule='step' is unknown; choose one of ['constant', 'cosine', 'linear']"),
    (["algo.std=biased"], "algo.std='biased' is not one of ['sample', 'population']"),
    (["algo.advantage=ppo"], "algo.advantage='ppo' is unknown"),
    (["algo.loss_agg=sum"], "algo.loss_agg='sum' is unknown"),
    (["rollout.dynamic_sampling=true", "rollout.group_size=1"],
     "rollout.dynamic_sampling=true needs rollout.group_size >= 2 (got 1)"),
    (["rollout.max_sampling_rounds=0"], "rollout.max_sampling_rounds=0: must be >= 1"),
    (["rollout.overlong=cut"], "rollout.overlong='cut' is not one of ['none', 'filter', 'soft']"),
    (["rollout.overlong=soft", "rollout.overlong_buffer=100"],
     "rollout.overlong_buffer=100: rollout.overlong=soft needs 0 < overlong_buffer <= rollout.max_new_tokens=24"),
    (["reward.aggregator=borda"], "reward.aggregator='borda' is unknown"),
    (["reward.gdpo_weights=[1, -1, 1]"], "reward.gdpo_weights=[1.0, -1.0, 1.0]: must be three weights >= 0"),
])
def test_bad_values_name_the_key_and_the_fix(overrides, fragment):
    with pytest.raises(UserError) as err:
        load_config("tiny", overrides)
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("overrides, fragment", [
    (["algo.clip_eps_low=0.3", "algo.clip_eps_high=0.2"], "algo.clip_eps_low=0.3 > algo.clip_eps_high=0.2"),
    (["algo.warmup_steps=-5"], "algo.warmup_steps=-5: must be >= 0"),
    (["rollout.dynamic_sampling=true", "rollout.group_size=1"], "rollout.dynamic_sampling=true needs"),
])
def test_cli_exits_2_with_one_line(tmp_path, overrides, fragment):
    run_dir = tmp_path / "run"
    sets = [x for o in overrides for x in ("--set", o)]
    proc = subprocess.run([sys.executable, "-m", "promedical.cli.main", "train", "--config", "tiny", *sets,
                           "--run-dir", str(run_dir)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], proc.stderr
    assert not run_dir.exists()
