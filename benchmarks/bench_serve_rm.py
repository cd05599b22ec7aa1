"""serve-rm load benchmark: the stdlib server (one lock, one request per forward pass) against the Ray Serve
app (serve.batch across concurrent requests), side by side in one run, same grader, loopback only.

At each concurrency C, C client threads share a fixed number of requests (each OpenRLHF-shaped: 8
responses to prompts of the shipped rubric set) and post them back to back; throughput counts
responses scored per second over the level's wall time, latency is per request.

    python benchmarks/bench_serve_rm.py [--grader similarity] [--requests 64] [--concurrency 1 8 32]
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import threading
import time
import urllib.request
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data"
RESPONSES = ("Please see a doctor if the pain gets worse.", "Rest and drink water.",
             "How long has this been going on?", "I am a doctor, take antibiotics.",
             "Call emergency services now.", "It is probably nothing.", "Keep a symptom diary.",
             "Avoid alcohol and get some sleep.")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request_body(records, k: int) -> bytes:
    """Request k: the 8 responses above to one rubric's prompt (rotating through the rubric set)."""
    rec = records[k % len(records)]
    return json.dumps({"query": list(RESPONSES), "prompts": [""] * len(RESPONSES),
                       "labels": [rec.prompt_id] * len(RESPONSES)}).encode()


def post(url: str, body: bytes) -> float:
    start = time.perf_counter()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as reply:
        assert len(json.loads(reply.read())["rewards"]) == len(RESPONSES)
    return time.perf_counter() - start


def load(url: str, records, concurrency: int, requests: int) -> dict[str, float]:
    """`requests` posts spread over `concurrency` threads; responses/s, p50 and p95 latency."""
    latencies: list[float] = []
    lock = threading.Lock()

    def client(c: int) -> None:
        for k in range(c, requests, concurrency):
            seconds = post(url, request_body(records, k))
            with lock:
                latencies.append(seconds)

    start = time.perf_counter()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    q = statistics.quantiles(latencies, n=20, method="inclusive")
    return {"responses_per_s": requests * len(RESPONSES) / wall, "p50_s": statistics.median(latencies),
            "p95_s": q[18]}


def start_stdlib(spec, rubrics):
    from promedical.deploy.reward_serve import build_scorer
    from promedical.reward_model.rm_server import make_server

    server = make_server(build_scorer(spec, rubrics), rubrics, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/get_reward"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--grader", default="similarity", choices=("rule", "similarity", "trained"))
    p.add_argument("--model", default="minilm")
    p.add_argument("--rubrics", default=str(DATA / "medical.jsonl"))
    p.add_argument("--requests", type=int, default=64, help="requests per concurrency level")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--replicas", type=int, default=1)
    p.add_argument("--json", default=None, help="also write the figures here")
    args = p.parse_args()

    from promedical.deploy import reward_serve
    from promedical.reward.rubric_io import load_records

    records = load_records(args.rubrics)
    rubrics = {r.prompt_id: r for r in records}
    spec = reward_serve.ScorerSpec(grader=args.grader, model=args.model)

    # both servers up at once, levels interleaved (stdlib then Serve at each concurrency), so a change in
    # the machine's load during the run hits both sides alike; the idle server takes no CPU
    server, stdlib_url = start_stdlib(spec, rubrics)
    cpus = os.cpu_count() or 1   # the replicas get the cores the stdlib server has
    settings = reward_serve.ServeSettings(replicas=args.replicas, replica_cpus=cpus / args.replicas)
    urls = {"stdlib": stdlib_url, "serve": reward_serve.start(spec, args.rubrics, settings, "127.0.0.1", free_port())}
    for url in urls.values():
        post(url, request_body(records, 0))                              # warm-up: model load, first pass
    results = {name: {} for name in urls}
    for c in args.concurrency:
        for name, url in urls.items():
            results[name][c] = load(url, records, c, args.requests)
            print(f"{name} x{c}: {results[name][c]}", file=sys.stderr, flush=True)
    server.shutdown()
    server.server_close()
    reward_serve.stop()

    print(f"grader {args.grader} ({args.model}), {args.requests} requests x {len(RESPONSES)} responses per level, "
          f"{os.cpu_count()} CPUs, Serve replicas {args.replicas}")
    print(f"{'clients':>7} | {'stdlib resp/s':>13} {'p50 s':>7} {'p95 s':>7} | {'Serve resp/s':>12} {'p50 s':>7} "
          f"{'p95 s':>7} | speed-up")
    for c in args.concurrency:
        a, b = results["stdlib"][c], results["serve"][c]
        print(f"{c:>7} | {a['responses_per_s']:>13.1f} {a['p50_s']:>7.3f} {a['p95_s']:>7.3f} | "
              f"{b['responses_per_s']:>12.1f} {b['p50_s']:>7.3f} {b['p95_s']:>7.3f} | "
              f"{b['responses_per_s'] / a['responses_per_s']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
