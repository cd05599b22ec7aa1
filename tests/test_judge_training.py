"""Training with reward.grader=judge on real Ray and vLLM: a local tiny judge replica gives only valid
verdicts and is replaced when killed; an endpoint judge that goes down stops the run with one line;
bad judge settings fail with exit 2 before any actor starts."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from promedical.deploy.config import load_config
from promedical.storage.metrics_log import iter_events, read_events

SMALL = ["rollout.prompts_per_step=2", "rollout.group_size=4", "rollout.max_new_tokens=12", "reward.grader=judge"]
VERDICTS_PER_STEP = 2 * 4 * 2            # prompts x samples x criteria (every tiny prompt has 2)


def _events(run_dir):
    path = run_dir / "metrics.msgpack"
    return read_events(path)[0] if path.exists() else []


def _judge_pid() -> int:
    from ray._private.state import actors
    pids = [a["Pid"] for a in actors().values() if a["ActorClassName"] == "JudgeReward" and a["State"] == "ALIVE"]
    assert len(pids) == 1, pids
    return pids[0]


def _when_logged(run_dir, steps: int, action, thread: threading.Thread) -> None:
    deadline = time.time() + 900
    while time.time() < deadline and thread.is_alive():
        if len([e for e in _events(run_dir) if "event" not in e]) >= steps:
            action()
            return
        time.sleep(0.05)


@pytest.mark.slow
def test_local_judge_gives_only_valid_verdicts_and_is_replaced_when_killed(tmp_path):
    from promedical.deploy.run import train

    cfg = load_config("tiny", SMALL + ["reward.model=tiny", "rollout.steps=3"])
    run_dir, errors = tmp_path / "local", []
    thread = threading.Thread(target=lambda: _capture(errors, train, cfg, run_dir), daemon=True)
    thread.start()
    _when_logged(run_dir, 1, lambda: os.kill(_judge_pid(), signal.SIGKILL), thread)
    thread.join(timeout=900)
    import ray
    ray.shutdown()                    # the next test's run starts its own Ray in a subprocess
    assert not errors, errors
    steps = [e for e in iter_events(run_dir / "metrics.msgpack")]
    assert [e["step"] for e in steps] == [0, 1, 2]
    assert all(e["judge_valid_fraction"] == 1.0 and e["judge_verdicts"] == VERDICTS_PER_STEP for e in steps)
    assert all(0.0 < e["judge_score_proficiency"] < 1.0 for e in steps)      # P(yes), not a 0/1 verdict
    restarts = [e for e in read_events(run_dir / "metrics.msgpack")[0] if e.get("event") == "restart"]
    assert [(e["role"], e["cause"]) for e in restarts] == [("reward", "died")]
    assert "judge_template: v1" in (run_dir / "config.yaml").read_text()


def _capture(errors, fn, *args):
    try:
        fn(*args)
    except BaseException as exc:      # reported by the test thread
        errors.append(exc)


class Good(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        self._send({"data": []})

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        self._send({"choices": [{"message": {"content": '{"criteria_met": true}'}}]})

    def _send(self, payload):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps(payload).encode())

    def log_message(self, *args):
        pass


@pytest.mark.slow
def test_an_endpoint_judge_that_goes_down_stops_the_run_with_one_line(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Good)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    run_dir = tmp_path / "endpoint"
    args = [str(Path(sys.executable).with_name("promedical")), "train", "--config", "tiny", "--run-dir", str(run_dir)]
    for s in SMALL + [f"reward.judge_url={url}", "reward.model=stub", "reward.judge_retries=0",
                      "reward.judge_timeout_s=2", "rollout.steps=5", "run.max_bad_steps=2"]:
        args += ["--set", s]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watcher = threading.Thread(target=proc.wait, daemon=True)
    watcher.start()

    def down():
        server.shutdown()
        server.server_close()
    _when_logged(run_dir, 1, down, watcher)
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 1, err[-3000:]
    line = [x for x in err.splitlines() if x.startswith("promedical train:")]
    assert len(line) == 1 and "stopped at step 2: 2 bad steps in a row" in line[0], err[-3000:]
    assert f"{VERDICTS_PER_STEP} of {VERDICTS_PER_STEP} judge verdicts invalid (connection={VERDICTS_PER_STEP})" \
        in line[0]
    steps = list(iter_events(run_dir / "metrics.msgpack"))
    assert steps[0]["judge_valid_fraction"] == 1.0 and steps[0]["bad_step"] == 0.0
    assert [(e["judge_valid_fraction"], e["judge_invalid_connection"], e["bad_step"]) for e in steps[1:]] == \
        [(0.0, VERDICTS_PER_STEP, 1.0)] * 2
