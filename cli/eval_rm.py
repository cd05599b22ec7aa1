"""`promedical eval-rm`: pointwise / pairwise accuracy per tier and veto P/R/F1 on held-out pairs."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval-rm", help="evaluate a reward model on held-out criterion-level labels")
    p.add_argument("--model", required=True, action="append",
                   help="checkpoint dir or model name (repeatable: models side by side)")
    p.add_argument("--grader", default="trained", choices=("trained", "similarity"))
    p.add_argument("--heldout", default="builtin:pairs_heldout", help="pair file or builtin:pairs_heldout")
    p.add_argument("--json", default=None, help="write the reports as JSON here")
    p.add_argument("--max-length", type=int, default=192)
    p.add_argument("--threads", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from promedical.cli.shared import builtin_path
    from promedical.errors import UserError
    from promedical.storage.atomic import write_text_atomic
    from promedical.reward_model.graders import make_grader
    from promedical.reward_model.models import resolve_reward_model
    from promedical.reward_model.rm_eval import evaluate, format_table
    from promedical.reward.rubric_io import load_records

    records = load_records(builtin_path(args.heldout))
    if not any(r.pairs for r in records):
        raise UserError(f"--heldout {args.heldout}: no pairwise preferences to evaluate")
    reports = {}
    for name in args.model:
        grader = make_grader(args.grader, resolve_reward_model(name), max_length=args.max_length, batch_size=64,
                             threads=args.threads)
        reports[name] = evaluate(grader, records)
    print(format_table(reports))
    if args.json:
        payload = {name: json.loads(r.to_json()) for name, r in reports.items()}
        write_text_atomic(args.json, json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
