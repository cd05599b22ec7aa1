"""The LLM judge: verdict parsing, and the OpenAI-compatible client against a local HTTP endpoint."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from promedical.reward.judge import OpenAICompatibleJudge, judge_many, judge_prompt, parse_verdict
from promedical.reward.rubric import Criterion, Tier

CRIT = Criterion(id="c0", text="Advises seeing a doctor.", tier=Tier.PROFICIENCY, weight=1.0)
VETO = Criterion(id="v0", text="Claims to be a doctor.", tier=Tier.VETO)


@pytest.mark.parametrize("raw, met, error", [
    ('{"criteria_met": true}', True, None),
    ('```json\n{"explanation": "x", "criteria_met": false}\n```', False, None),
    ('Sure! {"criteria_met": "True"} done', True, None),
    ("yes it is met", None, "no_json"),
    ('{"criteria_met": tru', None, "no_json"),
    ('{"criteria_met": maybe}', None, "bad_json"),
    ('{"explanation": "x"}', None, "missing_criteria_met"),
    ('{"criteria_met": 1}', None, "criteria_met_not_bool"),
])
def test_parse_verdict(raw, met, error):
    verdict = parse_verdict(raw)
    assert (verdict.met, verdict.error, verdict.raw) == (met, error, raw)


def test_prompt_names_the_veto_convention():
    assert "undesirable behaviour" in judge_prompt("q", "r", VETO)
    assert "undesirable" not in judge_prompt("q", "r", CRIT)
    assert "Advises seeing a doctor." in judge_prompt("q", "r", CRIT)


class _Endpoint(BaseHTTPRequestHandler):
    """Answers from a script: each request pops the next (status, content) pair."""
    script: list[tuple[int, str]] = []
    seen: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append({"body": body, "auth": self.headers.get("Authorization")})
        status, content = type(self).script.pop(0) if type(self).script else (200, "{}")
        payload = json.dumps({"choices": [{"message": {"content": content}}]}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Endpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_openai_judge_retries_then_counts_invalid(endpoint):
    _Endpoint.seen.clear()
    _Endpoint.script[:] = [
        (200, '{"criteria_met": true}'),                 # item 1: valid at once
        (500, ""), (200, '{"criteria_met": false}'),    # item 2: server error, then valid
        (200, "no idea"), (200, "still no"), (200, "nope"),  # item 3: invalid after 1 + 2 retries
    ]
    judge = OpenAICompatibleJudge(base_url=endpoint, model="m", api_key="k", retries=2, backoff_s=0.0)
    items = [("q1", "r1", CRIT), ("q2", "r2", CRIT), ("q3", "r3", VETO)]
    verdicts, stats = judge_many(judge, items)
    assert [v.met for v in verdicts] == [True, False, None]
    assert verdicts[2].error == "no_json" and verdicts[2].raw == "nope"
    assert (stats.total, stats.valid, stats.invalid, stats.by_error) == (3, 2, 1, {"no_json": 1})
    assert len(_Endpoint.seen) == 6
    assert _Endpoint.seen[0]["auth"] == "Bearer k"
    assert _Endpoint.seen[0]["body"]["model"] == "m"
    assert "Advises seeing a doctor." in _Endpoint.seen[0]["body"]["messages"][0]["content"]
    assert "1 invalid" in stats.summary()


def test_unreachable_endpoint_is_counted_not_raised():
    judge = OpenAICompatibleJudge(base_url="http://127.0.0.1:9", model="m", retries=1, backoff_s=0.0,
                                  timeout_s=2)
    verdicts, stats = judge_many(judge, [("q", "r", CRIT)])
    assert verdicts[0].met is None and stats.invalid == 1
    assert stats.by_error == {"connection": 1}


def test_judge_that_raises_is_counted():
    class Broken:
        def judge(self, instruction, response, criterion):
            raise RuntimeError("boom")

    verdicts, stats = judge_many(Broken(), [("q", "r", CRIT)] * 2)
    assert stats.by_error == {"exception_RuntimeError": 2} and stats.valid == 0


def test_label_cli_adds_valid_verdicts_and_counts_invalid(endpoint, tmp_path, capsys):
    from promedical.cli.main import main
    from promedical.reward.rubric_io import load_records
    rec = {"prompt_id": "p", "messages": [{"role": "user", "content": "q"}],
           "criteria": [{"id": "c0", "text": "Advises rest.", "tier": "proficiency", "weight": 1.0},
                        {"id": "v0", "text": "Claims to be a doctor.", "tier": "veto"}],
           "responses": [{"text": "Rest well.", "labels": {}}, {"text": "I am a doctor.", "labels": {"c0": False}}]}
    (tmp_path / "in.jsonl").write_text(json.dumps(rec) + "\n")
    _Endpoint.script[:] = [(200, '{"criteria_met": true}'), (200, '{"criteria_met": false}'),
                           (200, "??"), (200, "??"), (200, "??")]    # 3 judged pairs, the last one invalid
    assert main(["label", str(tmp_path / "in.jsonl"), str(tmp_path / "out.jsonl"), "--base-url", endpoint,
                 "--model", "m", "--retries", "2"]) == 0
    out = capsys.readouterr().out
    assert "3 (response, criterion) pairs to judge" in out and "2 valid, 1 invalid" in out
    labelled = load_records(tmp_path / "out.jsonl")[0]
    assert labelled.responses[0].labels == {"c0": True, "v0": False}
    assert labelled.responses[1].labels == {"c0": False}                 # invalid verdict left unlabelled
