"""storage/: the one atomic writer, and the metric-log / rollout rewind a resumed run starts with."""
from __future__ import annotations

import pyarrow as pa
import pytest

from promedical.storage.atomic import atomic_write_bytes, write_atomic, write_text_atomic
from promedical.storage.metrics_log import MetricsLog, read_events, truncate_before
from promedical.storage.run_dir import RunDir


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "out.txt"
    write_text_atomic(path, "old")

    def fail(tmp):
        tmp.write_text("half")
        raise OSError("disk full")
    with pytest.raises(OSError):
        write_atomic(path, fail)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new"


def test_truncate_before_keeps_earlier_steps_and_drops_markers(tmp_path):
    log = MetricsLog(tmp_path / "m.msgpack")
    for step in range(4):
        log.append({"step": step, "policy_version": step + 1, "reward_mean": step / 10})
    log.append({"event": "run_end", "status": "failed", "step": 3, "policy_version": 4})
    log.close()
    assert truncate_before(tmp_path / "m.msgpack", 2) == 2
    events, _ = read_events(tmp_path / "m.msgpack")
    assert [(e["step"], e["reward_mean"]) for e in events] == [(0, 0.0), (1, 0.1)]


def test_rewind_forgets_metrics_and_rollouts_from_the_step_on(tmp_path):
    run = RunDir(tmp_path)
    run.create("x: 1\n")
    log = MetricsLog(run.metrics_path)
    for step in range(3):
        log.append({"step": step, "policy_version": step + 1})
        (run.rollouts_dir / f"step_{step:06d}.arrow").write_bytes(pa.py_buffer(b"x").to_pybytes())
    log.close()
    run.rewind(1)
    assert [e["step"] for e in read_events(run.metrics_path)[0]] == [0]
    assert sorted(p.name for p in run.rollouts_dir.iterdir()) == ["step_000000.arrow"]
