"""Checkpoint and exact resume: SIGKILL the driver mid-run, resume, and match an uninterrupted run.

The policy runs as 2 data-parallel DeepSpeed ranks with ZeRO-2, so each rank saves and restores its own
partition of the optimizer state.
"""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from promedical.storage.metrics_log import iter_events, read_events
from promedical.storage.run_dir import RunDir

STEPS, EVERY, KILL_AFTER = 5, 2, 3
ARGS = ["--config", "tiny", "--set", f"rollout.steps={STEPS}", "--set", f"run.checkpoint_every={EVERY}",
        "--set", "rollout.max_staleness=1", "--set", "run.keep_checkpoints=1",
        "--set", "placement.roles.policy.replicas=2", "--set", "trainer.zero_stage=2"]
# Values computed from the same numbers on the same machine; only summation order may differ.
RTOL, ATOL = 1e-4, 1e-5
COMPARED = ("reward_mean", "reward_std", "s1_mean", "s3_mean", "kl", "loss", "policy_loss", "clip_fraction",
            "response_length_mean", "staleness_mean", "grad_norm", "policy_version")


def _train(*args):
    return subprocess.Popen([sys.executable, "-m", "promedical.cli.main", "train", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def _finish(proc, timeout=600):
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out.decode()[-3000:]


def _kill_group(proc):
    os.kill(proc.pid, signal.SIGKILL)            # the driver dies first, as in a crash
    proc.wait(timeout=30)
    try:
        os.killpg(proc.pid, signal.SIGKILL)      # then its local Ray, so nothing outlives the test
    except ProcessLookupError:
        pass


def _crash_and_resume(base, args, kill_after):
    """An uninterrupted run, and one killed after `kill_after` steps then resumed: (full, crashed, killed at)."""
    full, crashed = base / "full", base / "crashed"
    _finish(_train(*args, "--run-dir", str(full)))
    proc = _train(*args, "--run-dir", str(crashed))
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if len(read_events(crashed / "metrics.msgpack")[0]) >= kill_after:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    _kill_group(proc)
    killed_at = len(read_events(crashed / "metrics.msgpack")[0])
    _finish(_train("--resume", str(crashed)))
    return RunDir(full), RunDir(crashed), killed_at


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return _crash_and_resume(tmp_path_factory.mktemp("resume"), ARGS, KILL_AFTER)


def test_metrics_after_resume_equal_the_uninterrupted_run(runs):
    full, crashed, killed_at = runs
    a, b = list(iter_events(full.metrics_path)), list(iter_events(crashed.metrics_path))
    assert killed_at >= KILL_AFTER
    assert [e["step"] for e in b] == list(range(STEPS))
    for x, y in zip(a, b):
        for key in COMPARED:
            np.testing.assert_allclose(y[key], x[key], rtol=RTOL, atol=ATOL, err_msg=f"step {x['step']} {key}")


def test_no_rollout_lost_or_trained_twice(runs):
    full, crashed, _ = runs
    ta, tb = full.read_rollouts(), crashed.read_rollouts()
    keys = lambda t: list(zip(t["prompt_id"].to_pylist(), t["group_id"].to_pylist(), t["sample_index"].to_pylist()))
    assert len(keys(tb)) == len(set(keys(tb)))                      # nothing trained twice
    assert sorted(keys(tb)) == sorted(keys(ta))                     # nothing lost
    assert tb["step"].to_pylist() == ta["step"].to_pylist()


def test_only_the_last_checkpoints_are_kept_and_load_in_transformers(runs):
    _, crashed, _ = runs
    from transformers import AutoModelForCausalLM
    names = sorted(p.name for p in crashed.checkpoints_dir.iterdir())
    assert names == ["step_000004"]                   # keep_checkpoints=1: step 2 pruned
    model = AutoModelForCausalLM.from_pretrained(crashed.checkpoints_dir / "step_000004" / "policy")
    assert model.num_parameters() > 0


# LoRA (model.lora): 2 ZeRO-3 ranks train the adapters; the reference is the base computed on those ranks.
LORA_STEPS, LORA_EVERY, LORA_KILL_AFTER = 4, 2, 3
LORA_ARGS = ["--config", "tiny", "--set", f"rollout.steps={LORA_STEPS}", "--set", f"run.checkpoint_every={LORA_EVERY}",
             "--set", "model.lora.rank=8", "--set", "placement.roles.policy.replicas=2",
             "--set", "trainer.zero_stage=3"]


@pytest.fixture(scope="module")
def lora_runs(tmp_path_factory):
    return _crash_and_resume(tmp_path_factory.mktemp("resume-lora"), LORA_ARGS, LORA_KILL_AFTER)


def test_lora_resume_equals_the_uninterrupted_run(lora_runs):
    from peft import PeftConfig

    full, crashed, killed_at = lora_runs
    assert killed_at >= LORA_KILL_AFTER
    a, b = list(iter_events(full.metrics_path)), list(iter_events(crashed.metrics_path))
    assert [e["step"] for e in b] == list(range(LORA_STEPS))
    for x, y in zip(a, b):
        assert y["grad_norm"] > 0
        for key in COMPARED:
            np.testing.assert_allclose(y[key], x[key], rtol=RTOL, atol=ATOL, err_msg=f"step {x['step']} {key}")
    assert PeftConfig.from_pretrained(crashed.checkpoints_dir / "step_000004" / "policy").r == 8
    assert not list((crashed.root / "logs").glob("reference-*.log"))
