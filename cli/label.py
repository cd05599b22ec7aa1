"""`promedical label`: grade responses criterion by criterion with an LLM judge (one criterion per call)."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("label", help="label responses per criterion with an LLM judge")
    p.add_argument("input", help="rubric file with responses (JSONL/Parquet)")
    p.add_argument("output", help="*.jsonl or *.parquet: the records with the judge's labels added")
    p.add_argument("--judge", default="openai", choices=("openai", "vllm"))
    p.add_argument("--base-url", default=None, help="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1")
    p.add_argument("--model", required=True, help="judge model name (openai) or local model (vllm)")
    p.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key")
    p.add_argument("--timeout-s", type=float, default=30)
    p.add_argument("--retries", type=int, default=2)
    p.set_defaults(func=run)


def make_judge(args: argparse.Namespace):
    """The judge training and `promedical eval` use (actors/judge.py make_judge): an endpoint, or vLLM here."""
    from promedical.actors.judge import make_judge as judge_for
    from promedical.errors import UserError

    if args.retries < 0 or args.timeout_s <= 0:
        raise UserError("--retries must be >= 0 and --timeout-s > 0")
    if args.judge == "openai":
        if not args.base_url:
            raise UserError("--judge openai needs --base-url (an OpenAI-compatible endpoint ending in /v1)")
        return judge_for(url=args.base_url, model=args.model, api_key_env=args.api_key_env,
                         timeout_s=args.timeout_s, retries=args.retries)
    return judge_for(url="local", model=args.model)


def run(args: argparse.Namespace) -> int:
    from promedical.cli.shared import save_checked
    from promedical.reward.labelling import label_records, unlabelled
    from promedical.reward.rubric_io import load_records

    records = load_records(args.input)
    print(f"{len(unlabelled(records))} (response, criterion) pairs to judge")
    labelled, stats = label_records(make_judge(args), records)
    save_checked(labelled, args.output)
    print(stats.summary())
    print(f"wrote {args.output}")
    return 0
