"""Shared test fixtures: an explicit local Ray for the tests that need one (not autouse)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

os.environ.setdefault("PROMEDICAL_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "promedical"))


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray started the way `promedical train` starts it; shut down after the module."""
    import ray
    from promedical.deploy.build import start_ray

    start_ray("")
    yield ray
    ray.shutdown()


# ----------------------------------------------------------------------------- one CLI run, two modules
TINY_CLI_STEPS = 8
TINY_CLI_SETS = (f"rollout.steps={TINY_CLI_STEPS}", "run.sinks=[tensorboard,wandb,mlflow]")


@pytest.fixture(scope="session")
def tiny_cli_run(tmp_path_factory):
    """`promedical train --config tiny` as a user runs it (its own local Ray, stdout a pipe, all three
    sinks), shared by the end-to-end tests and the CLI/sink tests: one run start for both (suite time).
    Fields: run_dir, out, err, steps, sets (the `--set` overrides, for rebuilding its config)."""
    run_dir = tmp_path_factory.mktemp("tiny-cli") / "run"
    exe = Path(sys.executable).with_name("promedical")
    sets = [arg for s in TINY_CLI_SETS for arg in ("--set", s)]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.run([str(exe), "train", "--config", "tiny", *sets, "--run-dir", str(run_dir)],
                          capture_output=True, text=True, timeout=900, env={**env, "WANDB_SILENT": "true"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return SimpleNamespace(run_dir=run_dir, out=proc.stdout, err=proc.stderr, steps=TINY_CLI_STEPS,
                           sets=list(TINY_CLI_SETS))


# ----------------------------------------------------------------------------- two runs compared
# the same numbers computed by the same code; only a replaced actor's summation order could differ
RTOL, ATOL = 1e-4, 1e-5
COMPARED = ("reward_mean", "reward_std", "s1_mean", "kl", "loss", "policy_loss", "clip_fraction",
            "response_length_mean", "staleness_mean", "grad_norm", "policy_version")
TIMING = ("generate_seconds", "score_seconds", "reference_seconds")


def _same_run(run, baseline) -> None:
    """Fail unless `run` logged the metrics and stored the rollouts of `baseline` (within RTOL/ATOL)."""
    import numpy as np
    from promedical.storage.metrics_log import iter_events

    a, b = list(iter_events(baseline.metrics_path)), list(iter_events(run.metrics_path))
    assert [e["step"] for e in b] == [e["step"] for e in a]
    for x, y in zip(a, b):
        for key in COMPARED:
            np.testing.assert_allclose(y[key], x[key], rtol=RTOL, atol=ATOL, err_msg=f"step {x['step']} {key}")
    ta, tb = baseline.read_rollouts(), run.read_rollouts()
    keys = lambda t: list(zip(t["prompt_id"].to_pylist(), t["group_id"].to_pylist(), t["sample_index"].to_pylist()))
    assert len(keys(tb)) == len(set(keys(tb))) and keys(tb) == keys(ta)        # every row once, same order
    for column in ta.column_names:
        if column in TIMING:
            continue
        if column in ("response_ids", "prompt_ids", "response_text", "prompt_id", "finish_reason"):
            assert tb[column].to_pylist() == ta[column].to_pylist(), column
        elif column in ("behaviour_logprobs", "ref_logprobs", "criterion_scores"):
            for x, y in zip(ta[column].to_pylist(), tb[column].to_pylist()):
                np.testing.assert_allclose(y, x, rtol=RTOL, atol=ATOL, err_msg=column)


@pytest.fixture
def same_run():
    """`same_run(run, baseline)`: fail unless the RunDir `run` logged the metrics and stored the rollouts of
    `baseline` (same seed; healing and weight-sync tests)."""
    return _same_run
