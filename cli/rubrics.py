"""`promedical rubrics`: draft rubrics with an LLM, review them in the browser, adjudicate, export, stats."""
from __future__ import annotations

import argparse
import os


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rubrics", help="make rubrics: LLM drafts, physician review, adjudication, export")
    verbs = p.add_subparsers(dest="verb", required=True)
    d = verbs.add_parser("draft", help="draft one round of three-tier rubrics into a workbench database")
    d.add_argument("input", help="JSONL of instructions: canonical records, {\"prompt\": ...} or {\"messages\": [...]}")
    d.add_argument("db", help="workbench SQLite database (created if missing)")
    d.add_argument("--judge-url", default=None, help="OpenAI-compatible endpoint ending in /v1; without it a "
                                                     "local vLLM model named by --model drafts")
    d.add_argument("--model", required=True, help="model name at the endpoint, or a local model (tiny, smollm2, PATH)")
    d.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key")
    d.add_argument("--pool", default=None, help="canonical rubric file seeding the few-shot pool")
    d.add_argument("--few-shot", type=int, default=3, help="nearest pool examples per prompt")
    d.add_argument("--round-size", type=int, default=500, help="instructions drafted in this round")
    d.add_argument("--double-review-every", type=int, default=0,
                   help="every K-th item goes to two reviewers, for agreement statistics (0: none)")
    d.add_argument("--retries", type=int, default=2)
    d.add_argument("--timeout-s", type=float, default=60)
    d.add_argument("--concurrency", type=int, default=4, help="parallel requests to the endpoint")
    d.add_argument("--max-tokens", type=int, default=1024, help="longest drafted reply, in tokens")
    d.set_defaults(func=run_draft)
    r = verbs.add_parser("review", help="serve the review and adjudication pages (loopback by default)")
    r.add_argument("db")
    r.add_argument("--host", default="127.0.0.1", help="bind address; anything but loopback exposes the tokens' pages")
    r.add_argument("--port", type=int, default=8765)
    r.set_defaults(func=run_review)
    a = verbs.add_parser("reviewer", help="add a reviewer (or show their token) and print their page URLs")
    a.add_argument("db")
    a.add_argument("name")
    a.add_argument("--port", type=int, default=8765)
    a.set_defaults(func=run_reviewer)
    j = verbs.add_parser("pairs", help="load response pairs for double-blind adjudication")
    j.add_argument("db")
    j.add_argument("file", help="JSONL: canonical record whose responses are two {text, source} objects")
    j.add_argument("--reviews", type=int, default=1, help="adjudicators per pair (2 gives agreement statistics)")
    j.set_defaults(func=run_pairs)
    e = verbs.add_parser("export", help="accepted rubrics (and adjudications) as canonical JSONL/Parquet")
    e.add_argument("db")
    e.add_argument("output", help="*.jsonl or *.parquet: accepted rubrics with reviewers' edits")
    e.add_argument("--pairs-out", default=None, help="*.jsonl or *.parquet: adjudications as pairwise preferences")
    e.set_defaults(func=run_export)
    s = verbs.add_parser("stats", help="pass rate per round, edit rate per tier, agreement, time per item")
    s.add_argument("db")
    s.set_defaults(func=run_stats)


def _completer(args: argparse.Namespace):
    from promedical.workbench.drafting import EndpointCompleter, VLLMCompleter

    if args.judge_url:
        return EndpointCompleter(base_url=args.judge_url, model=args.model, api_key=os.environ.get(args.api_key_env),
                                 timeout_s=args.timeout_s, max_tokens=args.max_tokens, concurrency=args.concurrency)
    from promedical.actors.models import resolve_model
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")          # GiB; as the local judge of `eval`
    return VLLMCompleter(model=resolve_model(args.model), max_tokens=args.max_tokens, dtype="bfloat16",
                         enforce_eager=True, max_model_len=4096)


def _check_draft_args(args: argparse.Namespace) -> None:
    from promedical.errors import UserError

    for flag, value, low in (("--round-size", args.round_size, 1), ("--few-shot", args.few_shot, 0),
                             ("--retries", args.retries, 0), ("--double-review-every", args.double_review_every, 0),
                             ("--concurrency", args.concurrency, 1), ("--max-tokens", args.max_tokens, 1)):
        if value < low:
            raise UserError(f"{flag} {value}: must be >= {low}")
    if args.timeout_s <= 0:
        raise UserError(f"--timeout-s {args.timeout_s}: must be > 0")


def run_draft(args: argparse.Namespace) -> int:
    from promedical.reward.rubric_io import load_records
    from promedical.workbench.instructions import read_instructions
    from promedical.workbench.rounds import draft_round
    from promedical.workbench.store import connect

    _check_draft_args(args)
    instructions = read_instructions(args.input)
    seed = load_records(args.pool) if args.pool else []
    conn = connect(args.db, create=True)
    embedder = None
    if args.few_shot and (seed or conn.execute("SELECT 1 FROM items WHERE decision = 'accept'").fetchone()):
        from promedical.workbench.pool import MiniLMEmbedder
        embedder = MiniLMEmbedder()
    round_no, counts, left = draft_round(conn, instructions, _completer(args), seed=seed, embedder=embedder,
                                         round_size=args.round_size, few_shot=args.few_shot, retries=args.retries,
                                         double_review_every=args.double_review_every)
    if not counts.attempts:
        print(f"nothing left to draft: every instruction of {args.input} is in {args.db} ({round_no} rounds)")
        return 0
    print(f"round {round_no}: {counts.summary()}")
    print(f"{left} instructions left; review this round, then run draft again" if left else "all instructions drafted")
    return 0


def run_review(args: argparse.Namespace) -> int:
    from promedical.workbench.app import serve
    from promedical.workbench.store import connect, reviewers

    names = reviewers(connect(args.db))
    if not names:
        print(f"no reviewers yet; add one with: promedical rubrics reviewer {args.db} NAME")
    for name, token in names:
        print(f"{name}: http://{args.host}:{args.port}/review?token={token}")
    serve(args.db, host=args.host, port=args.port)
    return 0


def run_reviewer(args: argparse.Namespace) -> int:
    from promedical.workbench.store import add_reviewer, connect

    token = add_reviewer(connect(args.db), args.name)
    print(f"{args.name}: review     http://127.0.0.1:{args.port}/review?token={token}")
    print(f"{args.name}: adjudicate http://127.0.0.1:{args.port}/adjudicate?token={token}")
    return 0


def run_pairs(args: argparse.Namespace) -> int:
    from promedical.errors import UserError
    from promedical.workbench.adjudication import load_pairs
    from promedical.workbench.store import connect

    if args.reviews < 1:
        raise UserError(f"--reviews {args.reviews}: must be >= 1")
    print(f"{load_pairs(connect(args.db), args.file, args.reviews)} new pairs loaded from {args.file}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from promedical.workbench.export import export
    from promedical.workbench.store import connect

    rubrics, pairs = export(connect(args.db), args.output, args.pairs_out)
    print(f"wrote {rubrics} accepted rubrics to {args.output}")
    if args.pairs_out:
        print(f"wrote {pairs} adjudicated pairs to {args.pairs_out}")
    return 0


def run_stats(args: argparse.Namespace) -> int:
    from promedical.workbench.report import collect, render
    from promedical.workbench.store import connect

    print(render(collect(connect(args.db))))
    return 0
