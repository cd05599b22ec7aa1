"""The live metrics view: log-line framing, table rows, following a local run dir to its end."""
from __future__ import annotations

import json
import math

import pytest

from promedical.observe import metrics_view as view
from promedical.cli.main import main
from promedical.storage.metrics_log import MetricsLog

EVENT = {"step": 2, "policy_version": 3, "reward_mean": 0.25, "s1_mean": 0.5, "s2_mean": 0.75,
         "s3_mean": 0.0, "veto_rate": 0.125, "kl": 0.0123, "response_length_mean": 17.4,
         "staleness_mean": 0.0, "tokens_per_s": 812.3, "time_generate": 1.5, "time_score": 0.25,
         "time_reference": 0.5, "time_train": 2.0, "time_sync": 0.1, "time_step": 4.5,
         "staleness_hist": {"0": 32}}


def make_run(tmp_path, n: int):
    (tmp_path / "config.yaml").write_text("preset: tiny\n")
    log = MetricsLog(tmp_path / "metrics.msgpack")
    for step in range(n):
        log.append({**EVENT, "step": step, "policy_version": step + 1})
    return log


def test_log_line_round_trip_and_noise_is_skipped():
    line = "(Generator pid=7) INFO: " + view.METRICS_PREFIX + view.to_json(EVENT)
    assert view.parse_line(line) == EVENT
    assert view.parse_line("step 3/6  reward +0.250") is None
    assert view.parse_line(view.METRICS_PREFIX + '{"step": 1, "kl": ') is None    # torn line


def test_non_finite_values_become_null_json():
    record = json.loads(view.to_json({"step": 0, "policy_version": 1, "kl": math.nan, "x": math.inf}))
    assert record == {"step": 0, "policy_version": 1, "kl": None, "x": None}


def test_row_shows_one_based_step_and_every_column():
    cells = view.row(EVENT).split()
    assert len(cells) == len(view.COLUMNS) == len(view.header().split())
    assert cells[:4] == ["3", "3", "+0.250", "0.50"]          # step 2 (0-based) shows as 3
    assert cells[7] == "0.0123" and cells[10] == "812"
    assert view.row({"step": 0, "policy_version": 1}).split()[2] == "-"   # missing metric


def test_log_events_stop_at_the_end_event():
    lines = [view.METRICS_PREFIX + view.to_json({**EVENT, "step": s}) for s in range(3)]
    lines.insert(2, view.METRICS_PREFIX + view.to_json({"event": view.END_EVENT, "step": 1, "policy_version": 2}))
    assert [e["step"] for e in view.log_events(lines)] == [0, 1]


def test_follow_reads_new_events_until_done_marker(tmp_path):
    log = make_run(tmp_path, 2)
    polls = []

    def sleep(_: float) -> None:       # the "training" side: one more step per poll, then DONE
        polls.append(1)
        if len(polls) < 3:
            log.append({**EVENT, "step": 1 + len(polls), "policy_version": 2 + len(polls)})
        else:
            log.append({**EVENT, "step": 4, "policy_version": 5})
            (tmp_path / view.DONE_MARKER).write_text("{}")

    got = list(view.run_dir_events(tmp_path, follow=True, sleep=sleep))
    assert [(e["step"], e["policy_version"]) for e in got] == [(s, s + 1) for s in range(5)]
    log.close()


def test_follow_ends_at_run_end_event_without_marker(tmp_path):
    log = make_run(tmp_path, 2)
    log.append({"event": view.END_EVENT, "step": 1, "policy_version": 2})
    log.close()
    got = list(view.run_dir_events(tmp_path, follow=True, sleep=lambda _: pytest.fail("should not wait")))
    assert [e["step"] for e in got] == [0, 1]


def test_cli_json_prints_one_record_per_step(tmp_path, capsys):
    make_run(tmp_path, 3).close()
    assert main(["metrics", str(tmp_path), "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["step"], r["policy_version"]) for r in records] == [(0, 1), (1, 2), (2, 3)]


def test_cli_missing_run_dir_is_one_line_exit_2(tmp_path, capsys):
    assert main(["metrics", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "run directory" in err and "not found" in err


def test_bare_name_is_a_job_id_and_paths_are_run_dirs(tmp_path):
    assert not view.is_run_dir_target("promedical-tiny-20260101-000000-abc123")
    assert view.is_run_dir_target("runs/x") and view.is_run_dir_target(str(tmp_path))


def test_job_driver_echo_prints_each_logged_event_once(tmp_path, capsys):
    from promedical.deploy.job_entry import Echo

    log = make_run(tmp_path, 2)
    echo = Echo(tmp_path / "metrics.msgpack")
    echo.drain()
    log.append({**EVENT, "step": 2, "policy_version": 3})
    echo.drain()
    echo.drain()                       # nothing new: nothing printed twice
    log.close()
    got = list(view.log_events(capsys.readouterr().out.splitlines()))
    assert [(e["step"], e["policy_version"]) for e in got] == [(0, 1), (1, 2), (2, 3)]
