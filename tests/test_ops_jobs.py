"""Jobs on a real Ray head (a separate `ray start` process on loopback, token auth on): submit the tiny
preset, follow its metrics live to the end, stop a second job mid-run, Prometheus export, bad input."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from promedical.cli.main import main
from promedical.storage.metrics_log import read_events

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
TOKEN = "promedical-ops-test-token-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def processes_of(marker: str) -> list[int]:
    """PIDs whose command line contains `marker`, and all their descendants."""
    parent, roots = {}, []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        parent[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        if marker in cmd:
            roots.append(int(entry.name))
    found, frontier = set(roots), list(roots)
    while frontier:
        pid = frontier.pop()
        children = [c for c, p in parent.items() if p == pid and c not in found]
        found.update(children)
        frontier += children
    return sorted(found)


def kill_all(pids: list[int]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        time.sleep(2)


@pytest.fixture(scope="module")
def head():
    """A token-auth Ray head on loopback with its own temp dir and ports; its processes killed after."""
    temp = tempfile.mkdtemp(prefix="pmops-", dir="/tmp")   # short: Ray's unix socket paths must fit
    gcs, dash, metrics = free_port(), free_port(), free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": TOKEN,
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "RAY_metrics_report_interval_ms": "1000",
           "RAY_memory_monitor_refresh_ms": "0"}   # the node's memory is shared with other work: no OOM kills
    env.pop("RAY_ADDRESS", None)
    cmd = [str(BIN / "ray"), "start", "--head", f"--port={gcs}", "--dashboard-host=127.0.0.1",
           f"--dashboard-port={dash}", f"--temp-dir={temp}", "--num-cpus=2", f"--metrics-export-port={metrics}",
           f"--ray-client-server-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}",
           "--disable-usage-stats"]
    try:
        subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=120)
        yield {"address": f"http://127.0.0.1:{dash}", "gcs_port": gcs, "metrics_port": metrics,
               "temp": temp, "env": env}
    finally:
        kill_all(processes_of(temp))
        shutil.rmtree(temp, ignore_errors=True)


def cli_env(head, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in head["env"].items() if k != "RAY_AUTH_MODE"}   # the client needs only the token
    return {**env, **extra}


def promedical(head, *args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "promedical"), *args, "--address", head["address"]], env=cli_env(head),
                          capture_output=True, text=True, timeout=kw.get("timeout", 120))


def submit(head, run_dir: Path, steps: int) -> str:
    done = promedical(head, "submit", "--config", "tiny", "--set", f"rollout.steps={steps}",
                      "--run-dir", str(run_dir))
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.splitlines()[0]
    assert job_id.startswith("promedical-tiny-") and "promedical metrics" in done.stdout
    return job_id


def test_submit_follow_metrics_live_then_stop_a_second_job(head, tmp_path):
    run_a, steps = tmp_path / "a", 3
    job = submit(head, run_a, steps)
    follow = subprocess.Popen([str(BIN / "promedical"), "metrics", job, "--follow", "--json",
                               "--address", head["address"]], env=cli_env(head), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    records, done_when_first = [], None
    for line in follow.stdout:                 # blocks per line: records arrive as the steps happen
        if done_when_first is None:
            done_when_first = (run_a / "DONE").exists()
        records.append(json.loads(line))
    assert follow.wait(timeout=60) == 0, follow.stderr.read()
    assert done_when_first is False            # the first record came while the run was still going
    assert [(r["step"], r["policy_version"]) for r in records] == [(s, s + 1) for s in range(steps)]
    assert all({"reward_mean", "s1_mean", "veto_rate", "kl", "tokens_per_s", "time_train"} <= set(r)
               for r in records)
    logged, _ = read_events(run_a / "metrics.msgpack")     # exactly what the driver logged, in order
    assert logged[-1]["event"] == "run_end" and logged[-1]["status"] == "finished"
    steps_logged = [e for e in logged if "event" not in e]
    assert [(e["step"], e["policy_version"]) for e in steps_logged] == [(r["step"], r["policy_version"]) for r in records]
    # the follower stops at the driver's end line; the job turns SUCCEEDED once the driver has exited
    settle = time.time() + 60
    while "RUNNING" in (status := promedical(head, "status", job).stdout) and time.time() < settle:
        time.sleep(1)
    assert "SUCCEEDED" in status, status

    run_b = tmp_path / "b"
    job_b = submit(head, run_b, 200)
    deadline = time.time() + 300
    while not read_events(run_b / "metrics.msgpack")[0]:   # mid-run: at least one step trained
        assert time.time() < deadline, promedical(head, "logs", job_b).stdout[-2000:]
        time.sleep(2)
    stopped = promedical(head, "stop", job_b)
    assert stopped.returncode == 0 and "stop requested" in stopped.stdout
    while "STOPPED" not in (status := promedical(head, "status", job_b).stdout):
        assert time.time() < deadline and "RUNNING" in status, status
        time.sleep(1)
    assert len(read_events(run_b / "metrics.msgpack")[0]) < 200
    while not (run_b / "DONE").exists() and time.time() < deadline:
        time.sleep(0.5)                         # the driver marks its run within Ray's stop grace period
    done = json.loads((run_b / "DONE").read_text())
    assert done["status"] == "stopped", (done, promedical(head, "logs", job_b).stdout[-3000:])


def test_prometheus_sink_reaches_the_node_exporter(head, tmp_path):
    driver = ("import ray; from promedical.observe.sinks import make_sinks; ray.init(address='auto'); "
              f"s = make_sinks({str(tmp_path / 'promrun')!r}, ['prometheus'])[0]; "
              "s.write({'step': 3, 'policy_version': 4, 'reward_mean': 0.625}); import time; time.sleep(8)")
    env = {**head["env"], "RAY_ADDRESS": f"127.0.0.1:{head['gcs_port']}"}
    proc = subprocess.Popen([sys.executable, "-c", driver], env=env)
    deadline, found = time.time() + 60, []
    while time.time() < deadline and not found:
        time.sleep(1)
        body = urllib.request.urlopen(f"http://127.0.0.1:{head['metrics_port']}/metrics").read().decode()
        found = [l for l in body.splitlines() if l.startswith("ray_promedical_reward_mean{") and 'run="promrun"' in l]
    proc.wait(timeout=60)
    assert found and float(found[0].rsplit(" ", 1)[1]) == 0.625


@pytest.mark.parametrize("command", [["status"], ["logs"], ["stop"], ["metrics", "--follow"]])
def test_unknown_job_id_is_one_line_exit_2(head, command, monkeypatch, capsys):
    monkeypatch.setenv("RAY_AUTH_TOKEN", TOKEN)
    assert main([command[0], "no-such-job", *command[1:], "--address", head["address"]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no job 'no-such-job'" in err[0]


def test_wrong_and_missing_token_are_one_line_exit_2(head, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RAY_AUTH_TOKEN", "not-the-token")
    assert main(["status", "x", "--address", head["address"]]) == 2
    assert "rejected the Ray auth token" in capsys.readouterr().err
    monkeypatch.delenv("RAY_AUTH_TOKEN")
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))             # no ~/.ray/auth_token either
    assert main(["status", "x", "--address", head["address"]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "requires a Ray auth token and none was found" in err[0]


def test_wrong_address_and_bad_config_are_one_line_exit_2(capsys):
    closed = f"http://127.0.0.1:{free_port()}"
    assert main(["status", "x", "--address", closed]) == 2
    assert f"cannot reach a Ray dashboard at {closed}" in capsys.readouterr().err
    assert main(["status", "x", "--address", "127.0.0.1:8265"]) == 2
    assert "give the dashboard URL" in capsys.readouterr().err
    # the config is checked here before any connection: a closed port is never contacted
    assert main(["submit", "--config", "tiny", "--set", "rollout.steps=0", "--address", closed]) == 2
    assert "rollout.steps=0 must be > 0" in capsys.readouterr().err
