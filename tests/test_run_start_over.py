"""A policy lost before the run's first checkpoint: the next attempt starts the run over (step 0, every
step's events and rollouts dropped, the restart kept) instead of ending it; the metric view says so.
The lost policy itself is tested with real actors in test_healing.py (resumed from a checkpoint)."""
import pytest

from promedical.deploy.config import load_config
from promedical.deploy.run import _open_run
from promedical.errors import UserError
from promedical.observe.metrics_view import restart_line
from promedical.storage.checkpoints import START, Checkpoints
from promedical.storage.metrics_log import MetricsLog, read_events
from promedical.storage.run_dir import RunDir


def _half_run(root) -> RunDir:
    """Two steps logged and written, a partial first checkpoint, no complete one."""
    run = RunDir(root)
    run.create("preset: tiny\n")
    log = MetricsLog(run.metrics_path)
    for step in range(2):
        log.append({"step": step, "policy_version": step, "time_step": 1.5})
        run.rollout_path(step).write_bytes(b"rows")
    log.append({"event": "restart", "role": "reward", "replica": 0, "cause": "died", "step": 1,
                "policy_version": 1, "seconds_lost": 0.4})
    log.close()
    Checkpoints(run.checkpoints_dir).begin(2)        # the save the policy was lost in
    return run


def test_a_policy_lost_before_the_first_checkpoint_starts_the_run_over(tmp_path):
    cfg = load_config("tiny", [])
    _half_run(tmp_path / "run")
    restarts = [{"event": "restart", "role": "policy", "replica": 0, "cause": "died", "resumed_from": START}]
    run, checkpoints, latest, redone = _open_run(cfg, tmp_path / "run", resume=True, restarts=restarts)
    assert latest is None and checkpoints.latest() is None
    assert redone == 3.0                               # both steps' time is redone
    events, _ = read_events(run.metrics_path)
    assert [e.get("event") for e in events] == ["restart"]     # earlier restarts are kept, no step event
    assert not list(run.rollouts_dir.glob("step_*.arrow"))


def test_a_user_resume_without_a_checkpoint_is_still_refused(tmp_path):
    _half_run(tmp_path / "run")
    with pytest.raises(UserError, match="no complete checkpoint to resume from"):
        _open_run(load_config("tiny", []), tmp_path / "run", resume=True, restarts=[])


def test_the_metric_view_says_the_run_started_over():
    event = {"step": 1, "role": "policy", "replica": 0, "cause": "died", "seconds_lost": 3.0}
    assert "run started over" in restart_line({**event, "resumed_from": START})
    assert "run resumed from step_000002" in restart_line({**event, "resumed_from": "step_000002"})
    assert "replaced" in restart_line(event)
