"""The judge reward role without Ray: template checks, P(yes) from the verdict token, metrics, and the
endpoint path against a real HTTP server answering good, malformed, slow and 500 replies."""
from __future__ import annotations

import json
import math
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest

from promedical.actors.judge import verdict_from_logprobs
from promedical.actors.judge_reward import JudgeReward
from promedical.reward.aggregate import RewardShape
from promedical.reward.judge_prompt import load_template, template_problem
from promedical.reward.rubric import Criterion, RubricRecord, Tier
from promedical.reward.rubric_rows import record_from_dict
from promedical.rollout.judge_metrics import judge_metrics

# a refused config must not start Ray: these tests check ray.is_initialized(), so no shared Ray here
pytestmark = pytest.mark.usefixtures("own_ray")


@pytest.mark.parametrize("text, problem", [
    ("{instruction} {response} {criterion} {answer} {meaning}", None),
    ("{instruction} {response} {criterion}", "lacks the placeholder(s) {answer}"),
    ("{response} {answer}", "lacks the placeholder(s) {instruction}, {criterion}"),
    ("{criterion} {instruction} {response} {answer}", "puts {criterion} before"),
    ("{instruction} {response} {criterion} {answer} {score}", "unknown placeholder(s) {score}"),
    ("{instruction} {response} {criterion} {answer} {", "is not a format string"),
])
def test_template_problems(text, problem):
    found = template_problem(text)
    assert found is None if problem is None else problem in found


def test_template_versions(tmp_path):
    assert load_template("v1").version == "v1"
    path = tmp_path / "mine.txt"
    path.write_text("Q: {instruction}\nA: {response}\nC: {criterion}\n{answer}")
    version = load_template(str(path)).version
    assert version.startswith("mine.txt@") and len(version) == len("mine.txt@") + 10
    path.write_text("Q: {instruction}\nA: {response}\nC: {criterion} (edited)\n{answer}")
    assert load_template(str(path)).version != version          # the text changed: so does the version


def lp(token, p):
    return SimpleNamespace(decoded_token=token, logprob=math.log(p) if p > 0 else -math.inf)


def test_score_is_the_probability_of_yes_among_the_allowed_first_tokens():
    # the grammar leaves prefixes of "yes" / "no": P(yes) = 0.3 + 0.1, P(no) = 0.2 + 0.0 -> 0.4 / 0.6
    first = {1: lp("y", 0.3), 2: lp("ye", 0.1), 3: lp("n", 0.2), 4: lp("no", 0.0), 5: lp(" the", 0.0)}
    v = verdict_from_logprobs(first)
    assert v.met is True and v.error is None and v.score == pytest.approx(2 / 3) and v.value == pytest.approx(2 / 3)
    v = verdict_from_logprobs({1: lp("no", 0.7), 2: lp("yes", 0.1)})
    assert v.met is False and v.score == pytest.approx(0.125)
    assert verdict_from_logprobs({1: lp(" the", 0.9)}).error == "no_choice"


# ----------------------------------------------------------------------------- the endpoint path

OUTCOMES = {  # criterion text -> what the server does with a request for it
    "GOOD-YES": "good_yes", "GOOD-NO": "good_no", "MALFORMED": "malformed", "SLOW": "slow", "ERR500": "http_500",
    "FLAKY": "flaky",   # 500 on the first request for a prompt, a valid "met" on the retry
}


def records(n_prompts: int) -> list[RubricRecord]:
    criteria = [{"id": f"c{k}", "text": text, "tier": tier, "weight": 1.0}
                for k, (text, tier) in enumerate([("GOOD-YES", "proficiency"), ("GOOD-NO", "bonus"),
                                                  ("MALFORMED", "proficiency"), ("SLOW", "veto"),
                                                  ("ERR500", "proficiency"), ("FLAKY", "proficiency")])]
    return [record_from_dict({"prompt_id": f"p{i}", "messages": [{"role": "user", "content": f"question {i}"}],
                              "criteria": criteria}) for i in range(n_prompts)]


def only_good(n_prompts: int) -> list[RubricRecord]:
    return [record_from_dict({"prompt_id": f"g{i}", "messages": [{"role": "user", "content": f"q {i}"}],
                              "criteria": [{"id": "a", "text": "GOOD-YES", "tier": "proficiency", "weight": 1.0},
                                           {"id": "b", "text": "GOOD-NO", "tier": "veto"}]}) for i in range(n_prompts)]


class Stub(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat endpoint whose reply depends on the criterion in the prompt."""
    seen: Counter = Counter()
    lock = threading.Lock()

    def do_GET(self):  # noqa: N802  /v1/models: the reachability check
        self._reply(200, {"data": [{"id": "stub"}]})

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][0]["content"]
        criterion = prompt.split("# Criterion\n", 1)[1].split("\n", 1)[0]
        with self.lock:
            type(self).seen[criterion] += 1
            flaky_first = criterion == "FLAKY" and type(self).seen[("FLAKY", prompt)] == 0
            type(self).seen[("FLAKY", prompt)] += criterion == "FLAKY"
        kind = OUTCOMES[criterion]
        if kind == "http_500" or (kind == "flaky" and flaky_first):
            return self._reply(500, {"error": "boom"})
        if kind == "slow":
            time.sleep(1.0)
        content = {"good_no": '{"criteria_met": false}', "malformed": "I would say it is met."}.get(
            kind, '{"explanation": "ok", "criteria_met": true}')
        self._reply(200, {"choices": [{"message": {"role": "assistant", "content": content}}]})

    def _reply(self, status, payload):
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps(payload).encode())
        except OSError:
            pass                              # the client gave up (timeout)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def stub_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def batch_of(recs: list[RubricRecord], samples: int) -> pa.RecordBatch:
    rows = [(r.prompt_id, g, f"answer {k} to {r.prompt_id}") for g, r in enumerate(recs) for k in range(samples)]
    return pa.RecordBatch.from_pydict({"prompt_id": [p for p, _, _ in rows], "group_id": [g for _, g, _ in rows],
                                       "response_text": [t for _, _, t in rows]})


def test_endpoint_outcomes_are_counted_exactly_and_invalid_rows_are_masked(stub_url):
    Stub.seen.clear()
    recs, samples = records(3), 2
    role = JudgeReward(model="stub", judge_url=stub_url, aggregator="promedical", shape=RewardShape(),
                       timeout_s=0.3, retries=1, concurrency=8)
    out = role.score(batch_of(recs, samples), {r.prompt_id: r for r in recs})
    n = len(recs) * samples                                   # 6 responses x 6 criteria = 36 verdicts
    errors = Counter(e for row in out.column("criterion_errors").to_pylist() for e in row)
    assert errors == {"": 3 * n, "no_json": n, "timeout": n, "http_500": n}   # GOOD-YES, GOOD-NO, FLAKY valid
    # 1 + retries requests for each invalid verdict; FLAKY: a 500, then valid on its retry
    assert {k: Stub.seen[k] for k in OUTCOMES} == {"GOOD-YES": n, "GOOD-NO": n, "MALFORMED": 2 * n, "SLOW": 2 * n,
                                                   "ERR500": 2 * n, "FLAKY": 2 * n}
    scores = np.array(out.column("criterion_scores").to_pylist())
    np.testing.assert_array_equal(scores[:, [0, 1, 5]], [[1.0, 0.0, 1.0]] * n)
    assert np.isnan(scores[:, 2:5]).all()
    assert np.isnan(out.column("reward").to_numpy(zero_copy_only=False)).all()    # never a guessed reward
    view = pa.RecordBatch.from_arrays([out.column(k) for k in out.schema.names], schema=out.schema)
    m = judge_metrics(view)
    assert (m["judge_verdicts"], m["judge_invalid"]) == (6 * n, 3 * n)
    assert m["judge_valid_fraction"] == pytest.approx(0.5)
    assert (m["judge_invalid_no_json"], m["judge_invalid_timeout"], m["judge_invalid_http_500"]) == (n, n, n)
    assert m["judge_score_bonus"] == 0.0 and m["judge_score_proficiency"] == 1.0 and "judge_score_veto" not in m
    assert m["judge_seconds"] > 0


def test_valid_verdicts_give_finite_rewards_and_tier_means(stub_url):
    recs = only_good(2)
    role = JudgeReward(model="stub", judge_url=stub_url, aggregator="promedical", shape=RewardShape(), retries=0)
    out = role.score(batch_of(recs, 3), {r.prompt_id: r for r in recs})
    np.testing.assert_allclose(out.column("reward").to_numpy(zero_copy_only=False), 1.0)  # s1 = 1, no veto
    m = judge_metrics(out)
    assert (m["judge_verdicts"], m["judge_valid_fraction"], m["judge_invalid"]) == (12.0, 1.0, 0.0)
    assert (m["judge_score_proficiency"], m["judge_score_veto"]) == (1.0, 0.0)


def test_metrics_are_absent_for_a_scoring_grader():
    batch = pa.RecordBatch.from_pydict({"criterion_errors": pa.array([None, None], pa.list_(pa.string())),
                                        "criterion_tiers": [["veto"], ["veto"]], "criterion_scores": [[0.1], [0.2]],
                                        "score_seconds": [0.1, 0.1]})
    assert judge_metrics(batch) == {}


def test_an_invalid_veto_verdict_makes_the_reward_nan_not_zero():
    """A threshold reads NaN as 'not violated'; the row's reward must be NaN instead (masked, not guessed)."""
    from promedical.actors.reward_model import aggregators, reward_columns

    rec = RubricRecord(prompt_id="p", messages=(), criteria=(
        Criterion(id="a", text="A", tier=Tier.PROFICIENCY, weight=1.0), Criterion(id="v", text="V", tier=Tier.VETO)))
    batch = pa.RecordBatch.from_pydict({"prompt_id": ["p", "p"], "group_id": [0, 0], "response_text": ["x", "y"]})
    grade = lambda i, r, c: (np.array([1.0, 0.0, 1.0, np.nan]), [None, None, None, "timeout"])  # noqa: E731
    agg, group = aggregators("promedical", RewardShape())
    out = reward_columns(batch, {"p": rec}, grade, aggregate=agg, group_aggregate=group, shape=RewardShape())
    reward = out.column("reward").to_numpy(zero_copy_only=False)
    assert reward[0] == pytest.approx(1.0) and np.isnan(reward[1])
    assert out.column("criterion_errors").to_pylist() == [["", ""], ["", "timeout"]]


# ----------------------------------------------------------------------------- bad input: exit 2, no actor


@pytest.mark.parametrize("settings, says", [
    (["reward.grader=judge"], "reward.grader=judge with reward.model='minilm': no judge to run; set reward.model="),
    (["reward.grader=judge", "reward.model=tiny", "reward.judge_template=TEMPLATE"],
     "reward.judge_template='TEMPLATE' lacks the placeholder(s) {criterion}; use v1 or a file with"),
    (["reward.grader=judge", "reward.model=m", "reward.judge_url=http://127.0.0.1:PORT/v1"],
     "reward.judge_url=http://127.0.0.1:PORT/v1: cannot reach the judge"),
])
def test_bad_judge_settings_fail_in_one_line_before_any_actor(settings, says, tmp_path, capsys):
    import socket

    import ray
    from promedical.cli.main import main

    template = tmp_path / "t.txt"
    template.write_text("{instruction}\n{response}\n{answer}")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = str(sock.getsockname()[1])
    sock.close()                                    # nothing listens there: connection refused
    fill = lambda s: s.replace("TEMPLATE", str(template)).replace("PORT", port)  # noqa: E731
    args = ["train", "--config", "tiny", "--run-dir", str(tmp_path / "run")]
    for s in settings:
        args += ["--set", fill(s)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fill(says) in err[0], err
    assert not (tmp_path / "run").exists() and not ray.is_initialized()


def test_plan_sizes_a_local_judge_like_a_generator_and_an_endpoint_as_nothing():
    from promedical.deploy.config import load_config
    from promedical.deploy.gpu_fit import role_estimate
    from promedical.deploy.memory_plan import GENERATOR_WORKING_GIB, GIB, KNOWN_SHAPES, Estimate

    gpu = 80 * GIB
    local = load_config("demo", ["reward.grader=judge", "reward.model=smollm2", "reward.judge_gpu_memory_utilization=0.25"])
    est = role_estimate(local, "reward", 1, gpu)
    weights = KNOWN_SHAPES["smollm2"].params * 2                 # generator.dtype auto -> bf16 on a GPU
    assert est.weights == weights and est.working == GENERATOR_WORKING_GIB * GIB
    assert est.kv_cache == pytest.approx(0.25 * gpu - weights - GENERATOR_WORKING_GIB * GIB)
    served = load_config("demo", ["reward.grader=judge", "reward.model=judge", "reward.judge_url=http://h:8000/v1"])
    assert role_estimate(served, "reward", 1, gpu) == Estimate()
