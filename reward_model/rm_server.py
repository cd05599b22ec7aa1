"""HTTP reward server speaking OpenRLHF's remote reward-model protocol (stdlib http.server).

Request  POST /get_reward  {"query": [prompt + response text, ...], "prompts": [prompt text, ...],
                            "labels": [label, ...]}
Response {"rewards": [r, ...], "scores": [r, ...], "extra_logs": {"s1": [...], "s2": [...], "s3": [...]}}

Which rubric: the label is the rubric's prompt_id (put prompt_id in the OpenRLHF dataset's label
column); when it is not a known prompt_id, the rubric whose conversation text occurs in the prompt is
used. The response is the query with the prompt prefix removed (the whole query when it does not
start with the prompt). A request naming no known rubric gets HTTP 400 with the reason.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Sequence

from promedical.reward.rubric import RubricRecord

# scorer(prompt_ids, responses) -> (rewards, s1, s2, s3), one value per item
Scorer = Callable[[list[str], list[str]], tuple[list[float], list[float], list[float], list[float]]]
MAX_BODY_BYTES = 64 << 20


class RubricLookup:
    """prompt_id or prompt text -> the rubric's prompt_id."""

    def __init__(self, rubrics: dict[str, RubricRecord]) -> None:
        self.rubrics = rubrics
        self.by_text = [(self._last_user(r), pid) for pid, r in rubrics.items()]

    @staticmethod
    def _last_user(record: RubricRecord) -> str:
        users = [m.content for m in record.messages if m.role == "user"]
        return (users[-1] if users else record.messages[-1].content).strip()

    def find(self, label: Any, prompt: str) -> str | None:
        if isinstance(label, str) and label in self.rubrics:
            return label
        matches = [pid for text, pid in self.by_text if text and text in prompt]
        return max(matches, key=lambda pid: len(self._last_user(self.rubrics[pid]))) if matches else None


def split_response(query: str, prompt: str) -> str:
    return query[len(prompt):] if prompt and query.startswith(prompt) else query


def parse_request(body: dict[str, Any], lookup: RubricLookup) -> tuple[list[str], list[str]]:
    """(prompt_ids, responses) of a request; ValueError naming the first bad item."""
    if not isinstance(body, dict):
        raise ValueError(f"the body must be a JSON object with 'query', 'prompts' and 'labels', "
                         f"not a JSON {type(body).__name__}")
    queries = body.get("query")
    if not isinstance(queries, list) or not all(isinstance(q, str) for q in queries):
        raise ValueError("'query' must be a list of strings")
    prompts = body.get("prompts") or [""] * len(queries)
    labels = body.get("labels") or [None] * len(queries)
    if not isinstance(prompts, list) or not isinstance(labels, list):
        raise ValueError("'prompts' and 'labels' must be lists, one item per query")
    if len(prompts) != len(queries) or len(labels) != len(queries):
        raise ValueError("'query', 'prompts' and 'labels' must have the same length")
    ids, responses = [], []
    for k, (query, prompt, label) in enumerate(zip(queries, prompts, labels)):
        pid = lookup.find(label, prompt if isinstance(prompt, str) else "")
        if pid is None:
            raise ValueError(f"item {k}: label {label!r} is no known prompt_id and the prompt matches no rubric")
        ids.append(pid)
        responses.append(split_response(query, prompt if isinstance(prompt, str) else ""))
    return ids, responses


def make_handler(scorer: Scorer, lookup: RubricLookup, lock: threading.Lock) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802 (http.server naming)
            if self.path.rstrip("/") != "/get_reward":
                return self._reply(404, {"error": "POST /get_reward"})
            raw = self.headers.get("Content-Length")
            if raw is None or not raw.strip().isdigit():
                return self._reply(411 if raw is None else 400, {"error": f"Content-Length {raw!r}: send the "
                                                                          f"JSON body with its byte count"})
            length = int(raw)
            if length > MAX_BODY_BYTES:
                return self._reply(413, {"error": f"body over {MAX_BODY_BYTES} bytes"})
            try:
                ids, responses = parse_request(json.loads(self.rfile.read(length)), lookup)
            except ValueError as exc:          # json.JSONDecodeError and UnicodeDecodeError included
                return self._reply(400, {"error": str(exc)})
            with lock:                     # one batched forward pass at a time
                rewards, s1, s2, s3 = scorer(ids, responses)
            self._reply(200, {"rewards": rewards, "scores": rewards,
                              "extra_logs": {"s1": s1, "s2": s2, "s3": s3}})

        def do_GET(self) -> None:  # noqa: N802
            self._reply(200, {"status": "ok", "rubrics": len(lookup.rubrics)})

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def make_server(scorer: Scorer, rubrics: dict[str, RubricRecord], host: str, port: int) -> ThreadingHTTPServer:
    """A server bound to (host, port); port 0 picks a free one (see server.server_address)."""
    return ThreadingHTTPServer((host, port), make_handler(scorer, RubricLookup(rubrics), threading.Lock()))


def scores_columns(batch_columns: dict[str, Sequence[float]]) -> tuple[list[float], ...]:
    return tuple([float(x) for x in batch_columns[k]] for k in ("reward", "s1", "s2", "s3"))
