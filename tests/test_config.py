"""Strict config: every shipped preset loads; unknown, ill-typed or invalid values fail with the key named."""
import subprocess
import sys
import time

import pytest

from promedical.deploy.config import load_config, preset_names
from promedical.errors import UserError


@pytest.mark.parametrize("name", preset_names())
def test_every_shipped_preset_loads(name):
    cfg = load_config(name)
    assert cfg.preset == name


def test_overrides_are_typed():
    cfg = load_config("tiny", ["rollout.steps=3", "algo.lr=0.5", "reward.alpha=0.1"])
    assert (cfg.rollout.steps, cfg.algo.lr, cfg.reward.alpha) == (3, 0.5, 0.1)


@pytest.mark.parametrize("override, fragment", [
    ("rollout.stepz=3", "unknown config key rollout.stepz; did you mean rollout.steps?"),
    ("rollout.steps=three", "rollout.steps='three' must be an integer"),
    ("algo.lr=-1", "algo.lr=-1.0 must be > 0"),
    ("reward.lam=1.0", "reward.lam=1.0: must be >= 1 + beta"),
    ("algo.kl_estimator=k9", "algo.kl_estimator='k9' is unknown"),
    ("trainer.zero_stage=5", "trainer.zero_stage=5 is not one of [0, 1, 2, 3]"),
    ("rollout.group_size=1", "GRPO needs at least 2 samples per group"),
    ("nonsense.key=1", "unknown config key nonsense"),
    ("rollout.steps", "expected key=value"),
])
def test_bad_values_name_the_key(override, fragment):
    with pytest.raises(UserError) as err:
        load_config("tiny", [override])
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_preset_lists_choices():
    with pytest.raises(UserError, match="unknown preset 'nope'; choose one of .*tiny"):
        load_config("nope")


def test_config_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rollout:\n  steps: [1\n")
    with pytest.raises(UserError, match=r"bad.yaml:\d+: invalid YAML"):
        load_config(str(bad))
    typo = tmp_path / "typo.yaml"
    typo.write_text("rollout:\n  group_sise: 4\n")
    with pytest.raises(UserError, match="typo.yaml: unknown config key rollout.group_sise; did you mean rollout.group_size"):
        load_config(str(typo))


def _cli(*args, cwd=None):
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "promedical.cli.main", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120)
    return proc, time.perf_counter() - start


@pytest.mark.parametrize("args, fragment", [
    (["--config", "nope"], "unknown preset 'nope'"),
    (["--config", "tiny", "--set", "rollout.bogus=1"], "unknown config key rollout.bogus"),
    (["--config", "tiny", "--set", "rollout.steps=1.5"], "rollout.steps=1.5 must be an integer"),
    (["--config", "tiny", "--set", "rollout.top_p=0.9"], "rollout.top_p=0.9: top-p sampling is not supported"),
])
def test_cli_bad_input_exits_2_before_any_actor(tmp_path, args, fragment):
    run_dir = tmp_path / "run"
    proc, _ = _cli("train", *args, "--run-dir", str(run_dir))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], proc.stderr
    assert not run_dir.exists()


def test_cli_malformed_prompt_file_exits_2_naming_line(tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt_id": "a", "messages": [{"role": "user", "content": "hi"}], '
                       '"criteria": [{"id": "c", "text": "t", "tier": "proficiency", "weight": 1, "pattern": "x"}]}\n'
                       '{"prompt_id": "b", "messages": [\n')
    run_dir = tmp_path / "run"
    proc, _ = _cli("train", "--config", "tiny", "--set", f"data.prompts={prompts}", "--run-dir", str(run_dir))
    assert proc.returncode == 2
    assert f"{prompts}:2: invalid JSON" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not run_dir.exists()
