"""A judge that answers garbage, times out or cannot be reached gives counted invalid verdicts, never a crash.

Real endpoints: local HTTP servers (garbage, slow, half-valid) and a closed loopback port.
"""
import json
import socket
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from promedical.evaluation.grading import JudgeVerdicts
from promedical.evaluation.report import table
from promedical.evaluation.runner import score_rubric
from promedical.evaluation.scoring import criterion_points, healthbench_example_score
from promedical.evaluation.suites import Suite
from promedical.reward.aggregate import RewardShape
from promedical.reward.judge import OpenAICompatibleJudge
from promedical.reward.rubric_io import load_records

DATA = Path(__file__).resolve().parent.parent / "data" / "medical.jsonl"


def suite():
    """Two real HealthBench records cut to their first five criteria."""
    from dataclasses import replace
    records = [r for r in load_records(DATA) if r.source == "healthbench"][:2]
    return Suite(name="hb", kind="rubric", rubrics=tuple(replace(r, criteria=r.criteria[:5]) for r in records))


def completion(content):
    return json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()


@contextmanager
def server(reply):
    """A chat-completions server whose body for the k-th request is reply(k); yields its base URL."""
    calls = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            calls.append(1)
            body = reply(len(calls) - 1)
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()


def judge(url, timeout_s=2.0):
    return JudgeVerdicts(OpenAICompatibleJudge(base_url=url, model="m", timeout_s=timeout_s, retries=1,
                                               backoff_s=0.01))


def run(source):
    s = suite()
    return s, score_rubric(s, ["Please see a doctor."] * len(s), source, RewardShape())


def assert_all_invalid(result, error):
    v = result.notes["verdicts"]
    assert v["total"] == 10 and v["valid"] == 0 and v["invalid"] == 10
    assert v["by_error"] == {error: 10}
    assert result.metrics == {}                     # no number is made up from nothing
    assert any("every verdict was invalid" in w for w in result.warnings)
    assert any(f"{error}=10" in w and "scores unreliable" in w for w in result.warnings)
    text = table({"m": {"hb": result}})
    assert "n/a" in text and "WARNING m / hb" in text


def test_garbage_answers_are_counted_invalid():
    with server(lambda k: completion("I think it is fine, maybe!")) as url:
        _, result = run(judge(url))
    assert_all_invalid(result, "no_json")


def test_non_json_body_is_counted_invalid():
    with server(lambda k: b"<html>502 bad gateway</html>") as url:
        _, result = run(judge(url))
    assert_all_invalid(result, "bad_reply")


def test_timeouts_are_counted_invalid():
    def slow(k):
        time.sleep(1.5)
        return completion('{"criteria_met": true}')
    with server(slow) as url:
        start = time.perf_counter()
        _, result = run(judge(url, timeout_s=0.2))
    assert_all_invalid(result, "timeout")
    assert time.perf_counter() - start < 20


def test_unreachable_endpoint_is_counted_invalid():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()                                     # nothing listens there now: connection refused
    _, result = run(judge(f"http://127.0.0.1:{port}/v1"))
    assert_all_invalid(result, "connection")


def test_half_garbage_scores_only_the_valid_verdicts():
    # request r is valid ("met") when r % 3 == 0, garbage otherwise; with one retry, item 0 gets
    # request 0 (valid), item 1 requests 1 and 2 (invalid), item 2 request 3 (valid), ... -> 5 and 5
    replies = lambda k: completion('{"criteria_met": true}') if k % 3 == 0 else completion("???")
    with server(replies) as url:
        s, result = run(judge(url))
    v = result.notes["verdicts"]
    assert v["valid"] == 5 and v["invalid"] == 5 and v["by_error"] == {"no_json": 5}
    met = [m for sample in result.samples for m in sample["met"]]
    assert met.count(None) == v["invalid"] and all(m in (True, None) for m in met)
    expected = [healthbench_example_score([criterion_points(c) for c in r.criteria], sample["met"])
                for r, sample in zip(s.rubrics, result.samples)]
    expected = [e for e in expected if e is not None]
    assert result.metrics["healthbench"].value == pytest.approx(min(1.0, max(0.0, sum(expected) / len(expected))))
    assert any("scores unreliable" in w for w in result.warnings)
