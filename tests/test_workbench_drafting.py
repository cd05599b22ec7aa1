"""Drafting rubrics against a real local OpenAI-compatible endpoint that answers good drafts, malformed
JSON, plain text, invalid rubrics and timeouts: every outcome is counted, nothing crashes, invalid drafts
are kept for review. Also: instruction files, the few-shot pool, and the CLI's bad-input line."""
import json
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from promedical.cli.main import main
from promedical.reward.rubric_io import load_records
from promedical.workbench.drafting import EndpointCompleter, draft_all, parse_draft
from promedical.workbench.instructions import Instruction, read_instructions
from promedical.workbench.pool import Pool
from promedical.workbench.rounds import draft_round
from promedical.workbench.store import connect

GOOD = {"criteria": [
    {"id": "c0", "text": "Advises checking blood pressure at home.", "tier": "proficiency", "weight": 5},
    {"id": "c1", "text": "Explains what the numbers mean.", "tier": "bonus", "weight": 0},
    {"id": "c2", "text": "Tells the patient to stop their medication.", "tier": "veto", "weight": 0}]}
INVALID = {"criteria": [{"id": "c0", "text": "Mentions hydration.", "tier": "proficiency", "weight": 0}]}


def completion(content: str) -> bytes:
    return json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()


def reply_for(prompt: str, calls: dict) -> bytes | None:
    """The stub's behaviour, chosen by a keyword in the instruction; None = never answer in time."""
    key = prompt.rsplit("# Instruction", 1)[1]
    calls[key] = calls.get(key, 0) + 1
    if "GOOD" in key:
        return completion("Here is the rubric:\n```json\n" + json.dumps(GOOD) + "\n```")
    if "MALFORMED" in key:
        return completion('{"criteria": [{"id": "c0", "text": "unterminated')
    if "PROSE" in key:
        return completion("I would check the blood pressure and ask about symptoms.")
    if "INVALID" in key:
        return completion(json.dumps(INVALID))
    if "BROKEN" in key:
        return b"500"
    if "FLAKY" in key:
        return completion("not yet" if calls[key] == 1 else json.dumps(GOOD))
    return None


@contextmanager
def stub_endpoint():
    calls: dict = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            reply = reply_for(body["messages"][0]["content"], calls)
            if reply is None:
                time.sleep(1.5)                    # past the client's 0.5 s timeout
                return
            self.send_response(500 if reply == b"500" else 200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", calls
    finally:
        httpd.shutdown()
        httpd.server_close()


def instruction(pid: str, text: str) -> Instruction:
    return read_instructions_from([{"prompt_id": pid, "prompt": text}])[0]


def read_instructions_from(rows):
    import tempfile
    path = Path(tempfile.mkdtemp()) / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return read_instructions(path)


KINDS = ["GOOD", "GOOD", "MALFORMED", "PROSE", "INVALID", "FLAKY", "SLOW", "BROKEN"]


def test_stub_endpoint_outcomes_are_counted_and_invalid_drafts_kept(tmp_path):
    rows = [{"prompt_id": f"p{k}", "prompt": f"{kind} case {k}: my blood pressure is 150/95"}
            for k, kind in enumerate(KINDS)]
    instructions = read_instructions_from(rows)
    conn = connect(tmp_path / "wb.sqlite", create=True)
    with stub_endpoint() as (url, calls):
        completer = EndpointCompleter(base_url=url, model="stub", timeout_s=0.5, concurrency=4)
        round_no, counts, left = draft_round(conn, instructions, completer, retries=1, backoff_s=0.01)
    assert (round_no, left) == (1, 0)
    # FLAKY fails once, then drafts well; every other kind answers the same way twice
    assert dict(counts.by_outcome) == {"ok": 3, "bad_json": 1, "no_json": 1, "invalid_rubric": 1, "timeout": 1,
                                       "http_error": 1}
    assert counts.attempts == 8 + 6                      # one retry for each of the six first failures
    assert all(n == 2 for k, n in calls.items() if "GOOD" not in k) and sum(calls.values()) == 14
    stored = {r["prompt_id"]: r for r in conn.execute("SELECT * FROM items")}
    assert len(stored) == 8                              # nothing dropped
    assert stored["p4"]["outcome"] == "invalid_rubric"
    assert "proficiency criterion needs a weight > 0" in stored["p4"]["problems"]
    assert json.loads(stored["p4"]["draft"])[0]["text"] == "Mentions hydration."   # kept for the reviewer to fix
    assert stored["p3"]["raw"].startswith("I would check") and stored["p6"]["outcome"] == "timeout"
    assert [c["tier"] for c in json.loads(stored["p0"]["draft"])] == ["proficiency", "bonus", "veto"]
    assert stored["p5"]["attempts"] == 2 and stored["p5"]["outcome"] == "ok"


def test_unreachable_endpoint_is_a_counted_connection_failure():
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]                     # closed again: nothing listens there
    drafts, counts = draft_all(EndpointCompleter(base_url=f"http://127.0.0.1:{port}/v1", model="m", timeout_s=1),
                               [instruction("p", "cough")], lambda inst: [], retries=1, backoff_s=0.01)
    assert dict(counts.by_outcome) == {"connection": 1} and drafts[0].attempts == 2


def test_parse_draft_uses_the_canonical_validator():
    inst = instruction("p", "chest pain")
    assert parse_draft(inst, json.dumps(GOOD))[0] == "ok"
    assert parse_draft(inst, json.dumps(GOOD["criteria"]))[0] == "ok"          # a bare list is accepted
    outcome, criteria, problems = parse_draft(inst, json.dumps({"criteria": [dict(GOOD["criteria"][0], tier="major")]}))
    assert outcome == "invalid_rubric" and criteria and any("tier" in p for p in problems)
    assert parse_draft(inst, "{'criteria': []}")[0] == "bad_json"
    assert parse_draft(inst, "no rubric today")[0] == "no_json"


class WordEmbedder:
    """Bag of words over a fixed vocabulary: a stand-in for MiniLM in the pool's logic test."""
    VOCAB = ["knee", "heart", "chest", "rash", "skin", "stairs"]

    def embed(self, texts):
        v = np.array([[t.lower().count(w) for w in self.VOCAB] for t in texts], dtype=float) + 1e-6
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def pool_records():
    return load_records(Path(__file__).resolve().parent.parent / "data" / "tiny.jsonl")


def test_pool_gives_most_similar_first_and_grows():
    from dataclasses import replace
    from promedical.reward.rubric import Message
    base = pool_records()[0]
    knee = replace(base, prompt_id="knee", messages=(Message("user", "my knee hurts on the stairs"),))
    skin = replace(base, prompt_id="skin", messages=(Message("user", "a rash on my skin"),))
    heart = replace(base, prompt_id="heart", messages=(Message("user", "heart racing and chest pain"),))
    pool = Pool([knee, skin], WordEmbedder())
    assert [r.prompt_id for r in pool.nearest("chest pain and heart", 2)][0] in ("knee", "skin")
    pool.add(heart)
    assert [r.prompt_id for r in pool.nearest("chest pain, heart pounding", 2)][0] == "heart"
    assert [r.prompt_id for r in pool.nearest("knee clicks on stairs", 1)] == ["knee"]
    assert Pool([], WordEmbedder()).nearest("x", 3) == []


def test_minilm_pool_orders_by_meaning():
    from dataclasses import replace
    from promedical.reward.rubric import Message
    from promedical.workbench.pool import MiniLMEmbedder
    base = pool_records()[0]
    texts = {"cardio": "I get crushing chest pain when I climb stairs", "derm": "itchy red rash on both arms",
             "sleep": "I cannot fall asleep at night"}
    pool = Pool([replace(base, prompt_id=k, messages=(Message("user", t),)) for k, t in texts.items()],
                MiniLMEmbedder())
    assert pool.nearest("pressure in my chest when walking uphill", 1)[0].prompt_id == "cardio"
    assert pool.nearest("my skin is itching with red spots", 1)[0].prompt_id == "derm"


def test_few_shot_examples_come_from_accepted_rubrics(tmp_path):
    seen = []

    class Echo:
        def complete_many(self, prompts):
            seen.extend(prompts)
            return [json.dumps(GOOD)] * len(prompts)

    seed = pool_records()[:1]
    drafts, counts = draft_all(Echo(), [instruction("q", "knee pain")], lambda inst: seed)
    assert counts.by_outcome["ok"] == 1 and seed[0].criteria[0].text in seen[0]


@pytest.mark.parametrize("line,expect", [
    ('{"prompt": "chest pain"', "invalid JSON"),
    ('{"messages": [{"role": "doctor", "content": "hi"}]}', "messages[0].role"),
    ('{"promt": "typo"}', "promt: unknown field"),
    ('42', "expected a JSON object or string"),
])
def test_malformed_instruction_file_is_one_line_with_file_and_line(tmp_path, capsys, line, expect):
    path = tmp_path / "in.jsonl"
    path.write_text('{"prompt": "fine"}\n\n' + line + "\n")
    code = main(["rubrics", "draft", str(path), str(tmp_path / "wb.sqlite"), "--judge-url",
                 "http://127.0.0.1:9/v1", "--model", "m"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and f"{path}:3:" in err and expect in err
    assert not (tmp_path / "wb.sqlite").exists()          # nothing half-written


def test_rounds_of_configurable_size_and_cli_counts(tmp_path, capsys):
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"{kind} question {k}"}) + "\n"
                            for k, kind in enumerate(["GOOD", "PROSE", "GOOD"])))
    db = tmp_path / "wb.sqlite"
    with stub_endpoint() as (url, _):
        args = ["rubrics", "draft", str(path), str(db), "--judge-url", url, "--model", "stub", "--round-size", "2",
                "--retries", "1", "--timeout-s", "2"]
        assert main(args) == 0
        assert main(args) == 0
        assert main(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "round 1: 2 drafts in 3 calls: ok=1, no_json=1"
    assert out[1] == "1 instructions left; review this round, then run draft again"
    assert out[2] == "round 2: 1 drafts in 1 calls: ok=1" and out[3] == "all instructions drafted"
    assert out[4] == f"nothing left to draft: every instruction of {path} is in {db} (2 rounds)"
    rounds = [r[0] for r in connect(db).execute("SELECT round FROM items ORDER BY id")]
    assert rounds == [1, 1, 2]
