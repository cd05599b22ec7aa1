"""`promedical serve-rm` on Ray Serve: OpenRLHF's remote reward-model protocol, replicas, batching across requests.

    POST /get_reward  {"query": [...], "prompts": [...], "labels": [...]}  ->  {"rewards", "scores", "extra_logs"}
    GET  /health      {"status": "ok", "rubrics": N, "requests_scored": R, "batches": B}   (the replica answering)

Each replica holds one RewardModel role. Concurrent requests that reach a replica within
`batch_wait_s` are scored in one call (`serve.batch`), so eight clients sending eight responses each
cost one forward pass of 64 rather than eight of 8. The protocol (which rubric, which response) is
reward_model/rm_server.py's, shared with the stdlib server the benchmark compares against.
Every malformed request gets a JSON {"error": one line} with 400, 404, 405, 411 or 413; a request
still unscored after `timeout_s` gets 504.
"""
from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field, fields
from typing import Any

from ray import serve

from promedical.observe.actor_logs import quiet_driver_warnings
from promedical.reward.aggregate import RewardShape

MAX_BODY_BYTES = 64 << 20            # one request: 64 MiB of JSON is far past any rollout batch
ROUTE = "/get_reward"
APP_NAME = "promedical-rm"


@dataclass(frozen=True)
class ServeSettings:
    replicas: int = 1                # Serve replicas, each with its own copy of the reward model
    replica_cpus: float = 1.0        # CPUs Ray reserves per replica
    max_batch_requests: int = 32     # requests merged into one scoring call
    batch_wait_s: float = 0.01       # how long a replica waits for more requests before scoring
    timeout_s: float = 60.0          # a request not answered by then gets 504


@dataclass(frozen=True)
class ScorerSpec:
    """What a replica's RewardModel is built from (serve-rm's flags)."""

    grader: str
    model: str | None
    aggregator: str = "promedical"
    shape: RewardShape = field(default_factory=RewardShape)   # from --alpha ... --gdpo-weights
    batch_size: int = 64
    max_length: int = 192
    threads: int = 0
    dtype: str = "auto"

    @classmethod
    def of(cls, args: Any) -> "ScorerSpec":
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls) if f.name != "shape"},
                   shape=RewardShape.of(args))


def build_scorer(spec: ScorerSpec, rubrics: dict):
    """A function (prompt_ids, responses) -> (rewards, s1, s2, s3) over the RewardModel role."""
    import pyarrow as pa

    from promedical.actors.reward_model import RewardModel
    from promedical.errors import UserError
    from promedical.reward.aggregate import AGGREGATORS
    from promedical.reward_model.models import resolve_reward_model
    from promedical.reward_model.rm_server import scores_columns

    shape = spec.shape
    problems = shape.problems()
    if problems:                                    # "bonus_threshold=2: ..." -> "--bonus-threshold=2: ..."
        key, rest = problems[0].split("=", 1)
        raise UserError(f"--{key.replace('_', '-')}={rest}")
    if spec.aggregator not in AGGREGATORS:
        raise UserError(f"--aggregator {spec.aggregator!r}: choose one of {sorted(AGGREGATORS)}")
    model_path = None if spec.grader == "rule" else resolve_reward_model(spec.model)
    role = RewardModel(grader=spec.grader, model_path=model_path, aggregator=spec.aggregator, shape=shape,
                       batch_size=spec.batch_size, max_length=spec.max_length, threads=spec.threads,
                       dtype=spec.dtype)

    def scorer(prompt_ids: list[str], responses: list[str]):
        batch = pa.RecordBatch.from_pydict({"prompt_id": prompt_ids, "response_text": responses})
        out = role.score(batch, rubrics)
        return scores_columns({k: out.column(k).to_pylist() for k in ("reward", "s1", "s2", "s3")})

    return scorer


def check_rubrics_fit(spec: ScorerSpec, rubrics: dict) -> None:
    """Refuse at start, in one line, rubrics the grader cannot score (the rule grader needs patterns)."""
    from promedical.reward_model.graders import check_rule_patterns

    if spec.grader == "rule":
        check_rule_patterns(rubrics.values(), where="--grader rule",
                            fix="use --grader similarity or trained, or rubrics with patterns")


class HttpError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def check_length(headers: Any) -> int:
    """The declared body length; 411 when absent (and not chunked), 400 when not a number, 413 when too big."""
    raw = headers.get("content-length")
    if raw is None:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return -1                # read up to MAX_BODY_BYTES from the stream
        raise HttpError(411, "Content-Length required: send the JSON body with its length")
    if not raw.strip().isdigit():
        raise HttpError(400, f"Content-Length {raw!r} is not a byte count")
    length = int(raw)
    if length > MAX_BODY_BYTES:
        raise HttpError(413, f"body of {length} bytes is over the {MAX_BODY_BYTES}-byte limit; split the batch")
    return length


async def read_body(request) -> Any:
    """The request's JSON body, with the limits of check_length applied to what actually arrives."""
    check_length(request.headers)
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_BODY_BYTES:
            raise HttpError(413, f"body over the {MAX_BODY_BYTES}-byte limit; split the batch")
    if not data:
        raise HttpError(400, 'empty body; send {"query": [...], "prompts": [...], "labels": [...]}')
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HttpError(400, f"body is not JSON ({exc})") from None


def split_columns(sizes: list[int], columns: tuple[list[float], ...]) -> list[tuple[list[float], ...]]:
    """Columns scored for requests of `sizes` items, concatenated -> each request's own slice of every column."""
    out, start = [], 0
    for size in sizes:
        out.append(tuple(column[start:start + size] for column in columns))
        start += size
    return out


def json_response(status: int, payload: dict[str, Any]):
    from starlette.responses import JSONResponse
    return JSONResponse(payload, status_code=status)


@serve.deployment
class RewardServer:
    """One replica: parses a request, waits for its batch, answers in OpenRLHF's response format."""

    def __init__(self, spec: ScorerSpec, rubrics_path: str, settings: ServeSettings) -> None:
        from promedical.reward.rubric_io import load_records
        from promedical.reward_model.rm_server import RubricLookup

        rubrics = {r.prompt_id: r for r in load_records(rubrics_path)}
        self.lookup = RubricLookup(rubrics)
        self.scorer = build_scorer(spec, rubrics)
        self.timeout_s = settings.timeout_s
        self.requests = self.batches = 0        # scored so far by this replica (GET /health shows them)
        self.score_batch.set_max_batch_size(settings.max_batch_requests)
        self.score_batch.set_batch_wait_timeout_s(settings.batch_wait_s)

    @serve.batch
    async def score_batch(self, requests: list[tuple[list[str], list[str]]]) -> list[tuple[list[float], ...]]:
        """Requests [(prompt_ids, responses)] -> per request (rewards, s1, s2, s3), scored in one call."""
        ids = [pid for request_ids, _ in requests for pid in request_ids]
        texts = [text for _, request_texts in requests for text in request_texts]
        columns = await asyncio.to_thread(self.scorer, ids, texts) if ids else ([], [], [], [])
        self.requests, self.batches = self.requests + len(requests), self.batches + 1
        return split_columns([len(request_ids) for request_ids, _ in requests], columns)

    async def __call__(self, request):
        from promedical.reward_model.rm_server import parse_request

        path = request.url.path.rstrip("/")
        try:
            if path == "/health":
                return json_response(200, {"status": "ok", "rubrics": len(self.lookup.rubrics),
                                           "requests_scored": self.requests, "batches": self.batches})
            if path != ROUTE:
                raise HttpError(404, f"no route {request.url.path!r}; POST {ROUTE} or GET /health")
            if request.method != "POST":
                raise HttpError(405, f"{request.method} {ROUTE}: use POST with a JSON body")
            try:
                ids, responses = parse_request(await read_body(request), self.lookup)
            except ValueError as exc:
                raise HttpError(400, str(exc)) from None
            try:
                rewards, s1, s2, s3 = await asyncio.wait_for(self.score_batch((ids, responses)), self.timeout_s)
            except asyncio.TimeoutError:
                raise HttpError(504, f"not scored within {self.timeout_s:g} s; retry, or add replicas "
                                     f"(--replicas) or raise --timeout-s") from None
        except HttpError as exc:
            return json_response(exc.status, {"error": exc.reason})
        return json_response(200, {"rewards": rewards, "scores": rewards,
                                   "extra_logs": {"s1": s1, "s2": s2, "s3": s3}})


def start(spec: ScorerSpec, rubrics_path: str, settings: ServeSettings, host: str, port: int,
          address: str = "") -> str:
    """Start Ray (a private local one unless `address`), Serve's HTTP proxy and the replicas; the URL."""
    import ray

    if not ray.is_initialized():      # "local": a fresh private Ray, never one some `ray start` left running
        ray.init(address=address or "local", include_dashboard=False, logging_level="WARNING",
                 log_to_driver=False)
    # Serve's INFO lines ("Started Serve", "Connecting to existing Serve app ... http_options will not be
    # applied", which serve.run says after the serve.start below applied them): serve-rm prints its own line
    logging.getLogger("ray.serve").setLevel(logging.WARNING)
    quiet_driver_warnings()
    # the proxy's own end-to-end limit sits just past the replica's, so the replica's 504 with its reason
    # is what a client sees
    serve.start(http_options={"host": host, "port": port, "request_timeout_s": settings.timeout_s + 5})
    app = RewardServer.options(num_replicas=settings.replicas, ray_actor_options={"num_cpus": settings.replica_cpus},
                               max_ongoing_requests=4 * settings.max_batch_requests
                               ).bind(spec, rubrics_path, settings)
    serve.run(app, name=APP_NAME, route_prefix="/", blocking=False)
    return f"http://{host}:{port}{ROUTE}"


def stop() -> None:
    serve.shutdown()
