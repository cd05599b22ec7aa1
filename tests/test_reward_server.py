"""`promedical serve-rm` speaks OpenRLHF's remote reward-model protocol: checked with OpenRLHF's own client."""
from __future__ import annotations

import argparse
import asyncio
import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pyarrow as pa
import pytest

from promedical.actors.reward_model import RewardModel
from promedical.deploy.reward_serve import build_scorer
from promedical.reward.aggregate import RewardShape
from promedical.reward_model.rm_server import make_server, split_response
from promedical.reward.rubric_io import load_records

TINY = Path(__file__).resolve().parents[1] / "data" / "tiny.jsonl"
ARGS = dict(grader="rule", model=None, aggregator="promedical", shape=RewardShape(alpha=0.2, beta=0.5, lam=1.5),
            batch_size=64, max_length=192, threads=0, dtype="auto")


@pytest.fixture(scope="module")
def served():
    rubrics = {r.prompt_id: r for r in load_records(TINY)}
    server = make_server(build_scorer(argparse.Namespace(**ARGS), rubrics), rubrics, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/get_reward", rubrics
    server.shutdown()
    server.server_close()


def _direct(rubrics, ids, responses):
    role = RewardModel(grader="rule", model_path=None, aggregator="promedical",
                       shape=RewardShape(alpha=0.2, beta=0.5, lam=1.5))
    out = role.score(pa.RecordBatch.from_pydict({"prompt_id": ids, "response_text": responses}), rubrics)
    return out.column("reward").to_pylist(), out.column("s3").to_pylist()


def test_openrlhf_client_gets_the_rubric_rewards(served):
    agent = pytest.importorskip("openrlhf.utils.agent", reason="pip install --no-deps openrlhf pylatexenc")
    url, rubrics = served
    records = list(rubrics.values())[:4]
    prompts = [f"<|user|>{r.messages[-1].content}</s><|assistant|>" for r in records]
    texts = [r.responses[0].text if r.responses else "see a doctor " * 3 for r in records]
    texts[1] = "I am a doctor. " + texts[1]
    queries = [p + t for p, t in zip(prompts, texts)]
    labels = [records[0].prompt_id, None, records[2].prompt_id, "not-an-id"]   # None / unknown: matched by text
    executor = agent.SingleTurnAgentExecutor(remote_rm_url=url)
    replies = asyncio.run(executor._fetch_rewards_via_http(queries, prompts, labels))
    assert len(replies) == 1                      # one server, one shard
    rewards, s3 = _direct(rubrics, [r.prompt_id for r in records], texts)
    assert replies[0]["rewards"] == pytest.approx(rewards) and replies[0]["scores"] == replies[0]["rewards"]
    assert replies[0]["extra_logs"]["s3"] == pytest.approx(s3)


def _post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_unknown_rubric_and_bad_bodies_get_400(served):
    url, _ = served
    status, body = _post(url, {"query": ["hi"], "prompts": ["nothing known"], "labels": ["nope"]})
    assert status == 400 and "item 0" in body["error"]
    status, body = _post(url, {"query": "not a list"})
    assert status == 400 and "'query' must be a list" in body["error"]
    status, body = _post(url, {"query": ["a", "b"], "prompts": ["a"], "labels": [None, None]})
    assert status == 400 and "same length" in body["error"]


def test_split_response():
    assert split_response("PROMPT answer", "PROMPT ") == "answer"
    assert split_response("answer only", "PROMPT") == "answer only"
