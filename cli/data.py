"""`promedical data`: validate rubric files, import public rubric sets, build criterion-level pairs."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from promedical.cli.shared import save_checked

SHOWN_PROBLEMS = 20      # a binary file gives one problem per line; the first few say what is wrong


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="validate, import and convert rubric data")
    verbs = p.add_subparsers(dest="verb", required=True)
    v = verbs.add_parser("validate", help="report the problems of a JSONL or Parquet rubric file")
    v.add_argument("file")
    v.add_argument("--all", dest="show_all", action="store_true",
                   help=f"list every problem (default: the first {SHOWN_PROBLEMS} and how many more)")
    v.set_defaults(func=run_validate)
    i = verbs.add_parser("import", help="import a public rubric set into the canonical format")
    from promedical.reward.importers import IMPORTERS
    i.add_argument("--from", dest="fmt", required=True, choices=sorted(IMPORTERS))
    i.add_argument("input", help="a file, or a directory of .json/.jsonl files")
    i.add_argument("output", help="*.jsonl or *.parquet")
    i.set_defaults(func=run_import)
    c = verbs.add_parser("convert", help="canonical JSONL <-> Parquet (validated both ways)")
    c.add_argument("input")
    c.add_argument("output")
    c.set_defaults(func=run_convert)
    b = verbs.add_parser("pairs", help="build criterion-level training and held-out pairs (reward/pairs.py)")
    b.add_argument("input", nargs="+", help="canonical rubric files with reference responses")
    b.add_argument("--train-out", required=True, help="*.jsonl or *.parquet")
    b.add_argument("--heldout-out", required=True, help="*.jsonl or *.parquet")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--extended-wordings", action="store_true",
                   help="more veto phrasings for training, unseen ones for the calibration prompts "
                        "(the recipe v5 candidate's data/pairs_train_v5.jsonl; held-out pairs unchanged)")
    b.set_defaults(func=run_pairs)


def tier_counts(records) -> str:
    from promedical.reward.rubric import Tier
    counts = {t.value: sum(len(r.by_tier(t)) for r in records) for t in Tier}
    return f"{len(records)} records; criteria: " + ", ".join(f"{k} {v}" for k, v in counts.items())


def run_validate(args: argparse.Namespace) -> int:
    from promedical.reward.rubric_io import read_records

    records, problems = read_records(args.file, max_problems=sys.maxsize)
    shown = problems if args.show_all else problems[:SHOWN_PROBLEMS]
    for problem in shown:
        print(problem, file=sys.stderr)
    if len(shown) < len(problems):
        print(f"... and {len(problems) - len(shown)} more (--all lists every one)", file=sys.stderr)
    if problems:
        print(f"{args.file}: {len(problems)} problem(s); nothing was written", file=sys.stderr)
        return 2
    print(f"{args.file}: ok, {tier_counts(records)}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from promedical.reward.importers import IMPORTERS, expand_inputs

    records = IMPORTERS[args.fmt](expand_inputs(Path(args.input)))
    save_checked(records, args.output)
    print(f"{args.output}: {tier_counts(records)}")
    return 0


def run_convert(args: argparse.Namespace) -> int:
    from promedical.reward.rubric_io import load_records

    records = load_records(args.input)
    save_checked(records, args.output)
    print(f"{args.output}: {tier_counts(records)}")
    return 0


def run_pairs(args: argparse.Namespace) -> int:
    from promedical.reward.pairs import build_split, pair_counts
    from promedical.reward.rubric_io import load_records

    records = [r for path in args.input for r in load_records(path)]
    train, heldout = build_split(records, seed=args.seed, extended_wordings=args.extended_wordings)
    save_checked(train, args.train_out)
    save_checked(heldout, args.heldout_out)
    print(f"{args.train_out}: {pair_counts(train)}")
    print(f"{args.heldout_out}: {pair_counts(heldout)}")
    return 0
