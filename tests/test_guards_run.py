"""NaN rewards in a real tiny run (Ray actors, vLLM-free tiny generator, DeepSpeed policy): masked,
counted and the run goes on; NaN on every step stops `promedical train` with one line and exit 1,
the metric log ending in run_end failed and the last checkpoint intact."""
import functools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from ray import cloudpickle as ray_cloudpickle

import promedical.deploy.build as build
from promedical.actors.reward_model import RewardModel
from promedical.deploy.config import load_config
from promedical.deploy.run import train
from promedical.rollout.advantages import grpo
from promedical.storage.checkpoints import Checkpoints
from promedical.storage.metrics_log import read_events
from promedical.storage.run_dir import RunDir

ray_cloudpickle.register_pickle_by_value(sys.modules[__name__])   # the test graders go to workers

SETTINGS = ["rollout.prompts_per_step=2", "rollout.group_size=4", "rollout.max_new_tokens=12"]


class NanRewards(RewardModel):
    """The real reward actor, then NaN for the rows `bad(group_id, sample_index)` picks. With 2 prompts
    per step, step s holds groups 2s and 2s + 1."""

    @staticmethod
    def bad(group: int, sample: int) -> bool:
        return False

    def score(self, batch, rubrics):
        out = super().score(batch, rubrics)
        rows = zip(batch.column("group_id").to_pylist(), batch.column("sample_index").to_pylist(),
                   out.column("reward").to_pylist())
        reward = pa.array([float("nan") if self.bad(g, k) else r for g, k, r in rows], pa.float32())
        return out.set_column(out.schema.get_field_index("reward"), "reward", reward)


class SomeNanRewards(NanRewards):
    """Step 1: the first sample of both groups; step 2: every sample of group 4."""

    @staticmethod
    def bad(group, sample):
        return (group in (2, 3) and sample == 0) or group == 4


class NanFromStep2(NanRewards):
    @staticmethod
    def bad(group, sample):
        return group >= 4


def _with_reward(monkeypatch, cls):
    monkeypatch.setattr(build, "build_roles", functools.partial(build.build_roles, role_classes={"reward": cls}))


def _checkpoint_weights(run: RunDir):
    from safetensors.numpy import load_file

    latest = Checkpoints(run.checkpoints_dir).latest()
    assert latest is not None
    files = sorted((latest / "policy").glob("*.safetensors"))
    assert files
    return latest, {k: v for f in files for k, v in load_file(str(f)).items()}


@pytest.mark.slow
def test_nan_rewards_are_masked_counted_and_the_run_goes_on(tmp_path, local_ray, monkeypatch):
    _with_reward(monkeypatch, SomeNanRewards)
    cfg = load_config("tiny", SETTINGS + ["rollout.steps=3", "run.checkpoint_every=3"])
    run = RunDir(train(cfg, tmp_path / "some-nan"))
    events = read_events(run.metrics_path)[0]
    steps = [e for e in events if "event" not in e]
    assert events[-1]["event"] == "run_end" and events[-1]["status"] == "finished"
    assert [e["nonfinite_reward_rows"] for e in steps] == [0, 2, 4]
    assert [e["masked_rows"] for e in steps] == [0, 2, 4]
    assert [e["bad_step"] for e in steps] == [0, 0, 0]
    for e in steps:
        for key in ("loss", "policy_loss", "kl", "grad_norm", "reward_mean", "entropy"):
            assert np.isfinite(e[key]), (e["step"], key)
    table = run.read_rollouts()
    reward = np.asarray(table["reward"], dtype=np.float64)
    mask, adv = np.asarray(table["loss_mask"]), np.asarray(table["advantage"], dtype=np.float64)
    groups, steps_of = np.asarray(table["group_id"]), np.asarray(table["step"])
    assert (mask == np.isfinite(reward)).all() and (~mask).sum() == 6
    assert (adv[~mask] == 0.0).all() and np.isfinite(adv).all()
    for g in (2, 3):                      # the other 3 rows: advantages of their own rewards only
        rows = (groups == g) & mask
        assert adv[rows] == pytest.approx(grpo(reward[rows], groups[rows]), abs=1e-6)
    assert (steps_of[groups == 4] == 2).all()
    _, weights = _checkpoint_weights(run)
    assert all(np.isfinite(w).all() for w in weights.values())


# `promedical train` in a child process, its reward actor swapped for NanFromStep2 through build_roles
CHILD = """
import functools, sys
sys.path.insert(0, {tests!r})
import promedical.deploy.build as build
import test_guards_run
build.build_roles = functools.partial(build.build_roles, role_classes={{"reward": test_guards_run.NanFromStep2}})
from promedical.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_nan_on_every_step_stops_the_run_with_one_line_and_exit_1(tmp_path):
    run_dir = tmp_path / "all-nan"
    args = ["train", "--config", "tiny", "--run-dir", str(run_dir), *[f"--set={s}" for s in SETTINGS],
            "--set=rollout.steps=6", "--set=run.checkpoint_every=1", "--set=run.max_bad_steps=2"]
    child = subprocess.run([sys.executable, "-c", CHILD.format(tests=str(Path(__file__).parent)), *args],
                           capture_output=True, text=True, timeout=900)
    assert child.returncode == 1, child.stderr[-3000:]
    lines = [line for line in child.stderr.splitlines() if line.startswith("promedical train:")]
    assert len(lines) == 1 and "Traceback" not in child.stderr, child.stderr[-3000:]
    assert "stopped at step 3: 2 bad steps in a row (run.max_bad_steps=2)" in lines[0]
    assert "8 non-finite rewards" in lines[0]
    run = RunDir(run_dir)
    events = read_events(run.metrics_path)[0]
    assert [e["bad_step"] for e in events[:-1]] == [0, 0, 1, 1]
    assert [e["nonfinite_reward_rows"] for e in events[:-1]] == [0, 0, 8, 8]
    assert events[-1]["event"] == "run_end" and events[-1]["status"] == "failed"
    latest, weights = _checkpoint_weights(run)     # written after step 2; step 3 stopped the run first
    assert latest.name == "step_000003"
    assert all(np.isfinite(w).all() for w in weights.values())
