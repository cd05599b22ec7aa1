"""`promedical train` as a user runs it, stdout a pipe: few lines, actor logs in RUN_DIR/logs, and the
W&B (offline) and MLflow (file store) runs read back by their own libraries."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from promedical.storage.metrics_log import iter_events

ROLES = ("policy", "reference", "reward", "generator")


@pytest.fixture(scope="module")
def cli_run(tiny_cli_run):
    """The session's tiny CLI run (conftest: 8 steps, sinks tensorboard, wandb, mlflow; shared with e2e)."""
    return tiny_cli_run.run_dir, tiny_cli_run.out, tiny_cli_run.err, tiny_cli_run.steps


@pytest.mark.slow
def test_a_pipe_gets_one_line_per_step_and_a_summary_only(cli_run):
    run_dir, out, err, steps = cli_run
    lines = (out + err).splitlines()
    step_lines = [line for line in lines if line.startswith("step ")]
    assert [line.split("  ")[0] for line in step_lines] == [f"step {k}/{steps}" for k in range(1, steps + 1)]
    assert not [line for line in lines if " INFO " in line or "(pid=" in line], lines   # no actor output
    # the step lines plus the summary (~20 lines); a first run on a fresh machine adds a few lines of
    # first-use output (a DeepSpeed accelerator warning, the tiny model written once)
    assert len(lines) - len(step_lines) <= 30, lines
    assert any(line.startswith(f"run finished: {steps} step(s)") for line in lines)


@pytest.mark.slow
def test_actor_logs_are_in_the_run_directory(cli_run):
    run_dir, _, _, steps = cli_run
    logs = run_dir / "logs"
    assert sorted(p.name for p in logs.glob("*.log")) == sorted(f"{role}-0.log" for role in ROLES)
    generator = (logs / "generator-0.log").read_text()
    assert "Initializing a V1 LLM engine" in generator        # vLLM's INFO lines went here, not the terminal


def _wandb_history(run_dir: Path) -> list[dict]:
    """History rows of the offline run, read by wandb's own transaction-log reader (`wandb leet inspect`)."""
    exe = Path(sys.executable).with_name("wandb")
    proc = subprocess.run([str(exe), "leet", "inspect", "--json", str(run_dir / "wandb")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return [r["history"] for r in records if r["type"] == "history"]


@pytest.mark.slow
def test_wandb_offline_and_mlflow_hold_the_logged_step_events(cli_run):
    run_dir, _, _, steps = cli_run
    events = list(iter_events(run_dir / "metrics.msgpack"))
    assert [e["step"] for e in events] == list(range(steps))

    history = _wandb_history(run_dir)
    assert [int(h["step"]["num"]) for h in history] == list(range(steps))
    for row, e in zip(history, events):
        assert row["item"]["reward_mean"] == pytest.approx(e["reward_mean"])
        assert row["item"]["kl"] == pytest.approx(e["kl"])

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking_uri=(run_dir / "mlruns").resolve().as_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("promedical").experiment_id])
    assert run.info.run_name == run_dir.name and run.info.status == "FINISHED"
    for key in ("reward_mean", "veto_rate", "tokens_per_s"):
        got = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))
        assert got == [(e["step"], pytest.approx(e[key])) for e in events], key
