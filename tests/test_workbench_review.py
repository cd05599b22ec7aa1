"""The review web app over HTTP (FastAPI + SQLite): tokens, the two-reviewer rule, agreement figures
against a hand-worked example, invalid drafts fixed by a reviewer, the growing pool, blind adjudication,
and exports that `data validate` accepts."""
import json
import threading

import numpy as np
import pytest
from fastapi.testclient import TestClient

from promedical.cli.main import main
from promedical.reward.rubric_io import load_records
from promedical.workbench.app import create_app
from promedical.workbench.instructions import parse_line
from promedical.workbench.report import collect
from promedical.workbench.rounds import draft_round
from promedical.workbench.store import add_reviewer, connect

CRITERIA = [{"id": "c0", "text": "States the diagnosis.", "tier": "proficiency", "weight": 5.0},
            {"id": "c1", "text": "Gives the dose.", "tier": "proficiency", "weight": 3.0},
            {"id": "c2", "text": "Names red-flag symptoms.", "tier": "proficiency", "weight": 2.0},
            {"id": "c3", "text": "Explains the mechanism simply.", "tier": "bonus", "weight": 0.0},
            {"id": "c4", "text": "Recommends stopping insulin.", "tier": "veto", "weight": 0.0}]


class Canned:
    """A drafter that returns one fixed reply per instruction (keyed by a word in it); records prompts."""

    def __init__(self, replies):
        self.replies, self.prompts = replies, []

    def complete_many(self, prompts):
        self.prompts += prompts
        return [next(v for k, v in self.replies.items() if k in p.rsplit("# Instruction", 1)[1]) for p in prompts]


def make_db(tmp_path, n_items=2, double=1, replies=None):
    db = tmp_path / "wb.sqlite"
    conn = connect(db, create=True)
    insts = [parse_line({"prompt_id": f"p{k}", "prompt": f"question {k} about diabetes"}, "t") for k in range(n_items)]
    draft_round(conn, insts, Canned(replies or {"question": json.dumps({"criteria": CRITERIA})}),
                double_review_every=double)
    tokens = {name: add_reviewer(conn, name) for name in ("alice", "bob")}
    return db, tokens


def client_for(db, token):
    return TestClient(create_app(db), headers={"X-Reviewer-Token": token})


def change(c, item, version, cid, **changes):
    return c.post(f"/api/review/{item}/criteria/{cid}", json={"version": version, "changes": changes})


def test_unknown_reviewer_token_is_401(tmp_path):
    db, tokens = make_db(tmp_path)
    bad = client_for(db, "not-a-token")
    assert bad.get("/api/review").status_code == 401
    assert bad.post("/api/review/1/verdict", json={"version": 0, "verdict": "accept"}).status_code == 401
    plain = TestClient(create_app(db))
    assert plain.get("/review").status_code == 401 and plain.get("/review?token=nope").status_code == 401
    assert plain.get(f"/review?token={tokens['alice']}").status_code == 200
    assert connect(db).execute("SELECT COUNT(*) FROM reviews").fetchone()[0] == 0   # nothing opened


def test_two_reviewers_on_one_item_keep_own_copies_first_to_finish_decides(tmp_path):
    db, tokens = make_db(tmp_path, n_items=1)
    alice, bob = client_for(db, tokens["alice"]), client_for(db, tokens["bob"])
    a, b = alice.get("/api/review").json(), bob.get("/api/review").json()
    assert a["item_id"] == b["item_id"] == 1 and a["version"] == b["version"] == 0
    assert change(alice, 1, 0, "c0", weight=8).json()["version"] == 1
    got = change(bob, 1, 0, "c0", text="States the most likely diagnosis.")   # bob's own copy: no conflict
    assert got.status_code == 200 and got.json()["criteria"][0]["weight"] == 5.0
    stale = change(alice, 1, 0, "c1", status="reject")                         # alice's second tab, old version
    assert stale.status_code == 409 and stale.json()["current"]["version"] == 1
    assert stale.json()["current"]["criteria"][1]["status"] == "pending"        # the stale write did not land
    assert alice.post("/api/review/1/verdict", json={"version": 1, "verdict": "accept"}).json()["item_id"] is None
    assert bob.post("/api/review/1/verdict", json={"version": 1, "verdict": "reject"}).status_code == 200
    conn = connect(db)
    assert tuple(conn.execute("SELECT decided_by, decision FROM items").fetchone()) == ("alice", "accept")
    out = tmp_path / "out.jsonl"
    assert main(["rubrics", "export", str(db), str(out)]) == 0
    (rec,) = load_records(out)
    assert rec.criteria[0].weight == 8.0 and rec.criteria[0].text == "States the diagnosis."


def test_racing_writes_on_one_version_one_lands(tmp_path):
    db, tokens = make_db(tmp_path, n_items=1, double=0)
    client = client_for(db, tokens["alice"])
    client.get("/api/review")
    barrier, codes = threading.Barrier(4), []

    def write(k):
        with TestClient(create_app(db), headers={"X-Reviewer-Token": tokens["alice"]}) as c:
            barrier.wait()
            codes.append(change(c, 1, 0, "c0", weight=float(k + 1)).status_code)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(codes) == [200, 409, 409, 409]
    assert client.get("/api/review").json()["version"] == 1


# The hand-worked example of test_workbench_stats: ten criteria (two items of five) rated
# reject=0 < edited=1 < accepted as drafted=2; kappa = 0.32/0.62, linear weighted = 1 - 0.2/0.41.
A = [2, 2, 2, 2, 2, 1, 1, 1, 0, 0]
B = [2, 2, 2, 2, 1, 1, 1, 0, 0, 2]


def review_as(client, ratings):
    for k in range(0, len(ratings), 5):
        item = client.get("/api/review").json()
        version = item["version"]
        for c, r in zip(item["criteria"], ratings[k:k + 5]):
            if r == 1:
                version = change(client, item["item_id"], version, c["id"], weight=c["weight"] + 1).json()["version"]
            version = change(client, item["item_id"], version, c["id"],
                             status="reject" if r == 0 else "accept").json()["version"]
        assert client.post(f"/api/review/{item['item_id']}/verdict",
                           json={"version": version, "verdict": "accept"}).status_code == 200


def test_two_reviewers_kappa_matches_hand_worked_example(tmp_path, capsys):
    db, tokens = make_db(tmp_path, n_items=2, double=1)
    review_as(client_for(db, tokens["alice"]), A)
    review_as(client_for(db, tokens["bob"]), B)
    assert main(["rubrics", "stats", str(db)]) == 0
    out = capsys.readouterr().out
    assert f"criterion verdicts: 10 double-rated, Cohen's kappa {0.32 / 0.62:.3f}, weighted kappa {1 - 0.2 / 0.41:.3f}" in out
    assert "rubric verdicts: 2 double-rated, Cohen's kappa n/a" in out           # both accepted both: undefined
    assert "round 1: pass rate 100.0% (2 of 2 rubrics accepted)" in out
    # Edit rate over both reviews, by drafted tier (items' criteria: c0-c2 proficiency, c3 bonus, c4 veto):
    # proficiency: A edits 3 (item 2), B edits 2 (item 2: c0, c1) -> 5 of 12; bonus: none of 4;
    # veto: B edits item 1's c4 -> 1 of 4.
    assert "tier proficiency: edit rate 41.7% (5 of 12 reviewed criteria edited)" in out
    assert "tier bonus: edit rate 0.0% (0 of 4 reviewed criteria edited)" in out
    assert "tier veto: edit rate 25.0% (1 of 4 reviewed criteria edited)" in out
    assert "time per review item:" in out and "(4 items)" in out


def test_invalid_draft_fixed_by_reviewer_and_accept_checked_by_validator(tmp_path):
    zero = {"criteria": [dict(CRITERIA[0], weight=0.0), CRITERIA[4]]}
    db, tokens = make_db(tmp_path, n_items=1, double=0, replies={"question": json.dumps(zero)})
    alice = client_for(db, tokens["alice"])
    item = alice.get("/api/review").json()
    assert item["outcome"] == "invalid_rubric" and "weight > 0" in " ".join(item["problems"])
    refused = alice.post("/api/review/1/verdict", json={"version": 0, "verdict": "accept"})
    assert refused.status_code == 422 and "weight > 0" in refused.json()["detail"]
    assert change(alice, 1, 0, "c0", weight=-1).status_code == 422
    assert change(alice, 1, 0, "c0", tier="major").status_code == 422
    v = change(alice, 1, 0, "c0", weight=4).json()["version"]
    assert alice.post("/api/review/1/verdict", json={"version": v, "verdict": "accept"}).status_code == 200


def test_repeated_drafted_ids_stay_editable(tmp_path):
    twice = {"criteria": [CRITERIA[0], dict(CRITERIA[1], id="c0")]}
    db, tokens = make_db(tmp_path, n_items=1, double=0, replies={"question": json.dumps(twice)})
    alice = client_for(db, tokens["alice"])
    item = alice.get("/api/review").json()
    assert item["outcome"] == "invalid_rubric" and [c["id"] for c in item["criteria"]] == ["c0", "c0_1"]
    v = change(alice, 1, 0, "c0_1", status="reject").json()["version"]
    assert alice.post("/api/review/1/verdict", json={"version": v, "verdict": "accept"}).status_code == 200


class Words:
    def embed(self, texts):
        v = np.array([[t.count(w) for w in ("asthma", "diabetes")] for t in texts], dtype=float) + 1e-6
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_accepted_rubrics_join_the_pool(tmp_path):
    db, tokens = make_db(tmp_path, n_items=1, double=0)
    alice = client_for(db, tokens["alice"])
    v = change(alice, 1, 0, "c2", text="Names hypoglycaemia warning signs.").json()["version"]
    alice.post("/api/review/1/verdict", json={"version": v, "verdict": "accept"})
    drafter = Canned({"question": json.dumps({"criteria": CRITERIA})})
    round_no, counts, _ = draft_round(connect(db), [parse_line({"prompt_id": "n1", "prompt": "question on diabetes"}, "t")],
                                      drafter, embedder=Words())
    assert round_no == 2 and counts.by_outcome["ok"] == 1
    assert "Names hypoglycaemia warning signs." in drafter.prompts[0]


def write_pairs(path):
    rubric = {"prompt_id": "adj1", "messages": [{"role": "user", "content": "Is 150/95 high?"}],
              "criteria": [CRITERIA[0], CRITERIA[3]]}
    path.write_text(json.dumps(dict(rubric, responses=[{"text": "Yes, that is stage 2.", "source": "model-x"},
                                                       {"text": "No, fine.", "source": "model-y"}])) + "\n")


def test_adjudication_is_blind_and_export_reveals_sources(tmp_path):
    db, tokens = make_db(tmp_path, n_items=1)
    pairs = tmp_path / "pairs.jsonl"
    write_pairs(pairs)
    assert main(["rubrics", "pairs", str(db), str(pairs), "--reviews", "2"]) == 0
    alice = client_for(db, tokens["alice"])
    shown = alice.get("/api/adjudicate")
    assert "model-x" not in shown.text and "model-y" not in shown.text and "source" not in shown.text
    texts = shown.json()["responses"]
    assert sorted(texts) == ["No, fine.", "Yes, that is stage 2."]
    assert alice.post("/api/adjudicate/1/done").status_code == 422              # criteria not yet chosen
    first_is_x = texts[0].startswith("Yes")
    alice.post("/api/adjudicate/1/vote", json={"criterion_id": "c0", "choice": "first" if first_is_x else "second"})
    assert alice.post("/api/adjudicate/1/vote", json={"criterion_id": "c3", "choice": "tie"}).json()["votes"]["c3"] == "tie"
    assert alice.post("/api/adjudicate/1/done").json()["pair_id"] is None
    bob = client_for(db, tokens["bob"])
    bob_first_is_x = bob.get("/api/adjudicate").json()["responses"][0].startswith("Yes")
    bob.post("/api/adjudicate/1/vote", json={"criterion_id": "c0", "choice": "second" if bob_first_is_x else "first"})
    bob.post("/api/adjudicate/1/vote", json={"criterion_id": "c3", "choice": "tie"})
    bob.post("/api/adjudicate/1/done")
    # On the scale a < tie < b: alice (a, tie), bob (b, tie). p_o = 0.5; marginals (.5, .5, 0) and (0, .5, .5):
    # p_e = 0.25, kappa = 0.25 / 0.75; linear: observed 0.5 * 1, expected .125 + .25 + .125 = 0.5 -> 0.
    figures = collect(connect(db))["adjudication_agreement"]
    assert figures["n"] == 2 and figures["kappa"] == pytest.approx(1 / 3) and figures["weighted_kappa"] == pytest.approx(0)
    out, pairs_out = tmp_path / "rubrics.jsonl", tmp_path / "pairs_out.jsonl"
    assert main(["rubrics", "export", str(db), str(out), "--pairs-out", str(pairs_out)]) == 0
    assert main(["data", "validate", str(pairs_out)]) == 0
    (rec,) = load_records(pairs_out)
    assert [r.text for r in rec.responses] == ["Yes, that is stage 2.", "No, fine."]
    assert [(p.criterion_id, p.winner, p.loser) for p in rec.pairs] == [("c0", 0, 1)]   # the tie is left out
    assert "response0:model-x" in rec.tags and "response1:model-y" in rec.tags


def test_bad_pairs_file_is_one_line(tmp_path, capsys):
    db, _ = make_db(tmp_path, n_items=1)
    bad = tmp_path / "bad.jsonl"
    write_pairs(bad)
    bad.write_text(bad.read_text() + '{"prompt_id": "x", "responses": [{"text": "a", "source": "m"}]}\n')
    assert main(["rubrics", "pairs", str(db), str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{bad}:2: responses" in err
    assert connect(db).execute("SELECT COUNT(*) FROM pairs").fetchone()[0] == 0   # all or nothing


def test_review_command_serves_on_loopback(tmp_path):
    import socket
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request
    db, tokens = make_db(tmp_path, n_items=1)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "promedical.cli.main", "rubrics", "review", str(db),
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, status = time.time() + 60, None
        while time.time() < deadline and status is None:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/review", timeout=2)
            except urllib.error.HTTPError as exc:
                status = exc.code
            except OSError:
                time.sleep(0.3)
        assert status == 401
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/review?token={tokens['bob']}", timeout=5) as page:
            assert "Rubric review" in page.read().decode()
    finally:
        proc.terminate()
        out = proc.communicate(timeout=20)[0]
    assert f"bob: http://127.0.0.1:{port}/review?token={tokens['bob']}" in out
