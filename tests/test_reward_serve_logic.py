"""The serve-rm replica in-process (no Ray): a batch split back per request, the timeout answering 504,
the command line mapped onto the scorer spec and settings. Batching itself: tests/test_reward_serve.py."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from promedical.deploy import reward_serve
from promedical.errors import UserError
from promedical.reward.aggregate import RewardShape

TINY = Path(__file__).resolve().parents[1] / "data" / "tiny.jsonl"


def replica(**settings):
    cls = reward_serve.RewardServer.func_or_class            # the plain class under @serve.deployment
    return cls(reward_serve.ScorerSpec(grader="rule", model=None), str(TINY),
               reward_serve.ServeSettings(**settings))


def request(body: bytes, path: str = "/get_reward", method: str = "POST"):
    from starlette.requests import Request

    sent = False

    async def receive():
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}
    scope = {"type": "http", "method": method, "path": path, "query_string": b"", "root_path": "",
             "headers": [(b"content-length", str(len(body)).encode())], "scheme": "http",
             "server": ("127.0.0.1", 80)}
    return Request(scope, receive)


def body_for(server, n: int, tag: str) -> bytes:
    pid = next(iter(server.lookup.rubrics))
    return json.dumps({"query": [f"{tag}{k}" for k in range(n)], "labels": [pid] * n}).encode()


def test_a_batch_is_split_back_per_request():
    # requests of 3, 0 and 2 items scored together: columns (reward, s1) of 5 values
    columns = ([0.0, 1.0, 2.0, 3.0, 4.0], [10.0, 11.0, 12.0, 13.0, 14.0])
    assert reward_serve.split_columns([3, 0, 2], columns) == [
        ([0.0, 1.0, 2.0], [10.0, 11.0, 12.0]), ([], []), ([3.0, 4.0], [13.0, 14.0])]


def test_a_request_reaches_the_batch_and_gets_its_columns():
    server = replica()
    seen = []

    async def batch(item):            # stands in for the serve.batch method (that needs a Serve replica)
        seen.append(item)
        n = len(item[0])
        return [0.5] * n, [1.0] * n, [0.0] * n, [0.0] * n
    server.score_batch = batch
    reply = asyncio.run(server(request(body_for(server, 2, "a"))))
    assert reply.status_code == 200 and seen[0][1] == ["a0", "a1"]
    assert json.loads(reply.body) == {"rewards": [0.5, 0.5], "scores": [0.5, 0.5],
                                      "extra_logs": {"s1": [1.0, 1.0], "s2": [0.0, 0.0], "s3": [0.0, 0.0]}}


def test_a_request_not_scored_in_time_gets_504():
    server = replica(timeout_s=0.05)

    async def slow(item):
        await asyncio.sleep(0.5)
    server.score_batch = slow
    reply = asyncio.run(server(request(body_for(server, 1, "a"))))
    assert reply.status_code == 504 and "not scored within 0.05 s" in json.loads(reply.body)["error"]


def test_command_line_maps_onto_spec_and_settings():
    from promedical.cli.main import build_parser
    from promedical.cli.serve_rm import settings

    args = build_parser().parse_args(["serve-rm", "--grader", "rule", "--replicas", "3", "--batch-wait-ms", "25",
                                      "--lam", "3", "--veto-threshold", "0.7", "--gdpo-weights", "1", "2", "3"])
    spec = reward_serve.ScorerSpec.of(args)
    # one builder (RewardShape.of) for config and flags: every shape field reaches serve-rm, alpha at its default
    assert spec.grader == "rule" and spec.shape == RewardShape(lam=3.0, veto_threshold=0.7, gdpo_weights=(1, 2, 3))
    with pytest.raises(UserError, match="--bonus-threshold=2.0: must be in"):
        reward_serve.build_scorer(reward_serve.ScorerSpec.of(build_parser().parse_args(
            ["serve-rm", "--grader", "rule", "--bonus-threshold", "2"])), {})
    assert settings(args) == reward_serve.ServeSettings(replicas=3, batch_wait_s=0.025)
    with pytest.raises(UserError, match="--replicas 0: must be >= 1"):
        settings(build_parser().parse_args(["serve-rm", "--replicas", "0"]))


def test_rule_grader_refuses_rubrics_without_patterns_at_start():
    from promedical.reward.rubric_io import load_records

    medical = {r.prompt_id: r for r in load_records(TINY.with_name("medical.jsonl"))}
    with pytest.raises(UserError, match="--grader rule: criterion .* has no pattern"):
        reward_serve.check_rubrics_fit(reward_serve.ScorerSpec(grader="rule", model=None), medical)
    tiny = {r.prompt_id: r for r in load_records(TINY)}
    reward_serve.check_rubrics_fit(reward_serve.ScorerSpec(grader="rule", model=None), tiny)   # patterns: fine
    # training refuses the same rubrics through the same check (reward_model/graders.py check_rule_patterns)
    from promedical.deploy.config import load_config
    from promedical.deploy.run import load_prompts
    with pytest.raises(UserError, match=r"medical.jsonl \(reward.grader=rule\): criterion .* has no pattern"):
        load_prompts(load_config("tiny", ["reward.grader=rule", "data.prompts=builtin:medical"]))
