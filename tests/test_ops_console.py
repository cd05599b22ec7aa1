"""The training console: plain lines without a terminal, the live panel, the summary, actor-log filtering."""
from __future__ import annotations

import io
import logging

from promedical.observe import actor_logs
from promedical.observe.actor_logs import DropHarmless
from promedical.observe.console import Console, LogTail
from promedical.observe.console_view import eta_s, plain_line, time_split
from promedical.storage.metrics_log import MetricsLog


def event(step: int, reward: float, veto: float = 0.25) -> dict:
    return {"step": step, "policy_version": step + 1, "reward_mean": reward, "reward_std": 0.5,
            "s1_mean": 0.5, "s2_mean": 1.0, "s3_mean": 0.0, "veto_rate": veto, "kl": 0.001,
            "tokens_per_s": 400.0, "time_step": 2.0, "time_generate": 1.0, "time_score": 0.5,
            "time_train": 0.5}


def test_time_split_and_eta_by_hand():
    # generate 1.0 of 2.0 s = 50%, score and train 25% each; no reference/sync keys, so not shown
    assert time_split(event(0, 0.0)) == [("generate", 0.5), ("score", 0.25), ("train", 0.25)]
    # two steps done of 5 at 2.0 s each: 3 left x 2.0 s
    assert eta_s([event(0, 0.0), event(1, 0.0)], 5) == 6.0
    assert eta_s([], 5) is None
    # a slow first step (warm-up) does not set the pace: median of 30, 2, 2 is 2; 2 left x 2 s
    slow = [{**event(0, 0.0), "time_step": 30.0}, event(1, 0.0), event(2, 0.0)]
    assert eta_s(slow, 5) == 4.0


def test_plain_line_has_every_figure_on_one_line():
    line = plain_line({**event(1, 0.25), "restarts": 1}, 4, 4.0)
    assert "\n" not in line
    for part in ("step 2/4", "reward +0.250", "veto 0.25", "KL 0.0010", "400 tok/s", "gen 50%", "restarts 1",
                 "ETA 0:04"):
        assert part in line, part


def test_without_a_terminal_one_line_per_step_then_the_summary(tmp_path):
    log = MetricsLog(tmp_path / "metrics.msgpack")
    out = io.StringIO()
    console = Console(3, tmp_path, stream=out)
    assert console.live is False                     # StringIO is no terminal
    console.open()
    for step, (reward, veto) in enumerate([(-0.5, 0.5), (0.0, 0.25), (0.75, 0.0)]):
        log.append(event(step, reward, veto))
        console.step(event(step, reward, veto))
    (tmp_path / "tensorboard").mkdir()
    (tmp_path / "tensorboard" / "events.out").write_bytes(b"x")
    console.close("finished")
    lines = out.getvalue().splitlines()
    assert [line.split("  ")[0] for line in lines[:3]] == ["step 1/3", "step 2/3", "step 3/3"]
    summary = "\n".join(lines[3:])
    assert lines[3].startswith("run finished: 3 step(s)")
    assert "how it moved (step 1 -> 3)" in summary
    assert "reward          -0.500 -> +0.750" in summary and "veto rate       0.500 -> 0.000" in summary
    assert f"tensorboard --logdir {tmp_path / 'tensorboard'}" in summary
    assert "checkpoints" not in summary              # none written, none pointed at
    console.close("finished")                        # a second close prints nothing more
    assert len(out.getvalue().splitlines()) == len(lines)


def test_a_resumed_attempt_reopens_and_gets_its_own_summary(tmp_path):
    out = io.StringIO()
    console = Console(2, tmp_path, stream=out)
    console.open()
    console.close("failed")                          # attempt 1 fails before a step
    console.open()                                   # attempt 2, resumed
    console.step(event(0, 0.5))
    console.close("finished")
    lines = out.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines if line.startswith("run ")] == ["run failed", "run finished"]
    assert any(line.startswith("step 1/2") for line in lines)


def test_live_panel_renders_progress_figures_and_time_split(tmp_path):
    from rich.console import Console as RichConsole

    from promedical.observe.console_view import render

    console = Console(4, tmp_path, stream=io.StringIO(), live=False)
    screen = RichConsole(record=True, width=110, file=io.StringIO())
    screen.print(render(console))
    assert "starting actors" in screen.export_text()
    console.step({**event(1, 0.25), "restarts": 2})
    screen.print(render(console))
    text = screen.export_text()
    for part in ("step 2/4", "reward +0.250", "veto rate 0.25", "KL 0.0010", "400 tokens/s", "restarts 2",
                 "generate", "50%", "ETA 0:04"):
        assert part in text, part


def test_log_tail_streams_new_lines_without_the_harmless_ones(tmp_path):
    shown: list[str] = []
    tail = LogTail(tmp_path, shown.append)
    path = actor_logs.log_path(tmp_path, "generator", 0)
    path.write_text(":job_id:01000000\nWARNING [layerwise.py:266] RotaryEmbedding: Failed to load weights\n"
                    "ERROR engine died\npartial")
    tail.poll()
    assert shown == ["[generator-0] ERROR engine died"]
    with open(path, "a") as f:
        f.write(" line\n")
    tail.poll()
    assert shown[-1] == "[generator-0] partial line"    # a line is shown once it is complete


def test_driver_filter_drops_only_the_listed_ray_lines():
    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord("ray", logging.WARNING, __file__, 1, msg, None, None)
    drop = DropHarmless()
    assert not drop.filter(record("Token authentication is enabled for this Ray cluster. Set ..."))
    assert drop.filter(record("The actor died unexpectedly"))


def test_log_options_only_when_logs_are_routed(tmp_path):
    actor_logs.route_actor_logs(None)
    assert actor_logs.log_options("policy", 0) == {}
    actor_logs.route_actor_logs(tmp_path / "logs")
    env = actor_logs.log_options("policy", 1)["runtime_env"]["env_vars"]
    assert env[actor_logs.LOG_ENV] == str((tmp_path / "logs" / "policy-1.log").resolve())
    assert env[actor_logs.SETUP_HOOK_ENV] == "promedical.observe.actor_logs.redirect_output"
    actor_logs.route_actor_logs(None)


def test_setup_hook_variable_is_rays_own():
    from ray._private import ray_constants
    assert actor_logs.SETUP_HOOK_ENV == ray_constants.WORKER_PROCESS_SETUP_HOOK_ENV_VAR


def test_redirect_output_falls_back_when_the_log_cannot_be_written(tmp_path, monkeypatch, capfd):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv(actor_logs.LOG_ENV, str(blocker / "logs" / "policy-0.log"))   # parent is a file
    actor_logs.redirect_output()                                                     # must not raise
    assert "cannot write actor log" in capfd.readouterr().err


def test_redirect_output_sends_both_streams_of_the_process_to_the_file(tmp_path):
    import os
    import subprocess
    import sys

    path = tmp_path / "logs" / "generator-0.log"
    code = ("import os, sys; from promedical.observe.actor_logs import redirect_output; redirect_output(); "
            "print('to stdout', flush=True); print('to stderr', file=sys.stderr, flush=True); "
            "os.system('echo from a child process')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, actor_logs.LOG_ENV: str(path)})
    assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == ""
    assert path.read_text().splitlines() == ["to stdout", "to stderr", "from a child process"]
