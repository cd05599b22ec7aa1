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
    """A local Ray started the way `promedical train` starts it. It stays up for the next module of this
    test process that asks for it (a Ray start took 7-20 s of each module under the suite's load), unless
    this module left an actor or placement group behind: then it is shut down, so no module inherits one.
    A fixture that connects to a cluster of its own asks for `own_ray` first."""
    import ray
    from promedical.deploy.build import start_ray

    start_ray("")
    yield ray
    if ray.is_initialized() and not _left_clean(ray):
        ray.shutdown()


@pytest.fixture(scope="module")
def own_ray():
    """Leave the shared local Ray (if this process has one) before connecting to another cluster."""
    import ray
    ray.shutdown()


def _left_clean(ray, wait_s: float = 5.0) -> bool:
    """True once no actor is alive (or coming up) and no placement group is held; False after `wait_s`."""
    import gc
    import time
    from ray._private.state import actors

    gc.collect()                   # handles kept only by reference cycles (closures) free their actors
    deadline = time.time() + wait_s
    while True:
        busy = [a for a in actors().values() if a["State"] != "DEAD"]
        held = [g for g in ray.util.placement_group_table().values() if g["state"] != "REMOVED"]
        if not busy and not held:
            return True
        if time.time() > deadline:
            return False
        time.sleep(0.25)


# ----------------------------------------------------------------------------- one CLI run, two modules
TINY_CLI_STEPS = 8
TINY_CLI_SETS = (f"rollout.steps={TINY_CLI_STEPS}", "run.sinks=[tensorboard,wandb,mlflow]")


@pytest.fixture(scope="session")
def tiny_cli_run(tmp_path_factory):
    """`promedical train --config tiny` as a user runs it (its own local Ray, stdout a pipe, all three
    sinks), shared by the end-to-end tests and the CLI/sink tests: one run start for both (suite time),
    also when the two modules run in different xdist workers (the first builds it, under a lock, in the
    workers' common temporary directory; the other reads it).
    Fields: run_dir, out, err, steps, sets (the `--set` overrides, for rebuilding its config)."""
    import fcntl
    import json

    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    with open(root / "tiny-cli.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = root / "tiny-cli" / "result.json"
        if not done.exists():
            done.parent.mkdir(exist_ok=True)
            done.write_text(json.dumps(_tiny_cli(done.parent / "run")))
        result = json.loads(done.read_text())
    return SimpleNamespace(run_dir=Path(result["run_dir"]), out=result["out"], err=result["err"],
                           steps=TINY_CLI_STEPS, sets=list(TINY_CLI_SETS))


def _tiny_cli(run_dir: Path) -> dict:
    exe = Path(sys.executable).with_name("promedical")
    sets = [arg for s in TINY_CLI_SETS for arg in ("--set", s)]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.run([str(exe), "train", "--config", "tiny", *sets, "--run-dir", str(run_dir)],
                          capture_output=True, text=True, timeout=900, env={**env, "WANDB_SILENT": "true"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"run_dir": str(run_dir), "out": proc.stdout, "err": proc.stderr}


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


# ----------------------------------------------------------------------------- two test processes (xdist)
# `pytest` runs the suite in 2 worker processes (pyproject addopts: -n 2 --dist loadfile): each module
# stays in one worker (its module-scoped Ray and runs are built once), and the runs' start-ups leave a core
# idle part of the time, which the other worker fills. (--dist loadgroup does not group under pytest 9.)
# Modules that took over 40 s in one serial suite run (2026-12-07, 2-core AVX2 EPYC), longest first: they
# are handed out first, so that no long module is left to run alone at the end. Only the order changes.
LONGEST_FIRST = ("test_resume.py", "test_healing.py", "test_reward_decoder.py", "test_ops_jobs.py",
                 "test_async_pipeline.py", "test_algo_options.py", "test_judge_training.py",
                 "test_weight_sync_collective.py", "test_guards_policy.py", "test_policy_ranks.py",
                 "test_guards_run.py", "test_lora.py", "test_healing_node.py", "test_e2e_tiny.py",
                 "test_eval_cli.py")


def pytest_collection_modifyitems(config, items):
    """The longest modules first (a stable sort: the order inside a module is kept)."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
