"""serve-rm on Ray Serve: OpenRLHF's own client, batching across concurrent requests, and a clear HTTP
error for every malformed request, all over real HTTP on loopback."""
from __future__ import annotations

import asyncio
import json
import socket
import threading
from pathlib import Path

import pytest

from promedical.reward.rubric_io import load_records

TINY = Path(__file__).resolve().parents[1] / "data" / "tiny.jsonl"
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(local_ray):
    from promedical.deploy import reward_serve

    spec = reward_serve.ScorerSpec(grader="rule", model=None)
    # a long batch window, so the concurrent requests below reliably share batches
    settings = reward_serve.ServeSettings(replicas=1, replica_cpus=0, max_batch_requests=16, batch_wait_s=0.3)
    port = free_port()
    url = reward_serve.start(spec, str(TINY), settings, "127.0.0.1", port)
    yield url, port, {r.prompt_id: r for r in load_records(TINY)}
    reward_serve.stop()


def raw_http(port: int, request: bytes) -> tuple[int, dict]:
    """Send bytes as they are (no client fixing the headers up); the status and JSON body of the reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    try:
        return status, json.loads(body)
    except json.JSONDecodeError:
        return status, {"raw": body.decode(errors="replace")}


def post(port: int, body: bytes, path: str = "/get_reward", length: str | None = None) -> tuple[int, dict]:
    length_line = b"" if length == "omit" else f"Content-Length: {length or len(body)}\r\n".encode()
    return raw_http(port, f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                          f"Content-Type: application/json\r\n".encode() + length_line + b"\r\n" + body)


def query(records, n: int) -> bytes:
    return json.dumps({"query": ["see a doctor"] * n, "prompts": [""] * n,
                       "labels": [records[k % len(records)].prompt_id for k in range(n)]}).encode()


def test_openrlhf_client_gets_the_same_rewards_as_the_role(served):
    agent = pytest.importorskip("openrlhf.utils.agent", reason="pip install --no-deps openrlhf pylatexenc")
    import pyarrow as pa

    from promedical.actors.reward_model import RewardModel
    from promedical.reward.aggregate import RewardShape

    url, _, rubrics = served
    records = list(rubrics.values())[:4]
    prompts = [f"<|user|>{r.messages[-1].content}</s><|assistant|>" for r in records]
    texts = ["How long has it lasted?", "I am a doctor.", "see a doctor", "rest"]
    labels = [records[0].prompt_id, None, records[2].prompt_id, "not-an-id"]   # None / unknown: matched by text
    executor = agent.SingleTurnAgentExecutor(remote_rm_url=url)
    (reply,) = asyncio.run(executor._fetch_rewards_via_http([p + t for p, t in zip(prompts, texts)], prompts, labels))
    role = RewardModel(grader="rule", model_path=None, aggregator="promedical", shape=RewardShape())
    direct = role.score(pa.RecordBatch.from_pydict({"prompt_id": [r.prompt_id for r in records],
                                                    "response_text": texts}), rubrics)
    assert reply["rewards"] == pytest.approx(direct.column("reward").to_pylist())
    assert reply["scores"] == reply["rewards"]
    assert reply["extra_logs"]["s1"] == pytest.approx(direct.column("s1").to_pylist())


def test_concurrent_requests_share_batches(served):
    _, port, rubrics = served
    records = list(rubrics.values())
    before = raw_http(port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")[1]
    replies: list[tuple[int, dict]] = []
    threads = [threading.Thread(target=lambda: replies.append(post(port, query(records, 8)))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [status for status, _ in replies] == [200] * 8
    assert all(len(body["rewards"]) == 8 for _, body in replies)
    status, after = raw_http(port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 200 and after["status"] == "ok" and after["rubrics"] == len(rubrics)
    assert after["requests_scored"] - before["requests_scored"] == 8
    assert after["batches"] - before["batches"] < 8          # some requests were scored together


def test_every_malformed_request_gets_a_one_line_reason(served):
    _, port, rubrics = served
    pid = next(iter(rubrics))
    cases = {
        "not JSON": (post(port, b"{not json"), 400, "not JSON"),
        "a JSON list": (post(port, b'["a", "b"]'), 400, "must be a JSON object"),
        "query not a list": (post(port, b'{"query": "text"}'), 400, "'query' must be a list of strings"),
        "query items not strings": (post(port, b'{"query": [1, 2]}'), 400, "'query' must be a list of strings"),
        "labels not a list": (post(port, json.dumps({"query": ["a"], "labels": pid}).encode()), 400,
                              "must be lists"),
        "lengths differ": (post(port, json.dumps({"query": ["a", "b"], "labels": [pid]}).encode()), 400,
                           "same length"),
        "unknown rubric": (post(port, b'{"query": ["a"], "prompts": ["zzz"], "labels": ["nope"]}'), 400,
                           "item 0: label 'nope' is no known prompt_id"),
        "empty body": (post(port, b""), 400, "empty body"),
        "garbage Content-Length": (post(port, b'{"query": []}', length="abc"), 400, None),
        "no Content-Length": (post(port, b"", length="omit"), 411, "Content-Length required"),
        "oversized": (post(port, b"{}", length=str(65 << 20)), 413, "over the"),
        "wrong path": (post(port, b"{}", path="/score"), 404, "no route '/score'"),
        "wrong method": (raw_http(port, b"GET /get_reward HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
                         405, "use POST"),
    }
    for name, ((status, body), want_status, want_text) in cases.items():
        assert status == want_status, (name, status, body)
        if want_text is not None:                 # the HTTP parser answers a garbage length itself
            assert want_text in body["error"] and "\n" not in body["error"], (name, body)
