"""`promedical train-rm`: train a criterion-injected reward model (or the criterion-agnostic baseline).

Several processes: `torchrun --nproc_per_node N $(which promedical) train-rm --deepspeed 3 ...`
(each rank takes 1/N of every batch; rank 0 writes the model and prints the summary).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from promedical.cli.shared import builtin_path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-rm", help="train a reward model with the per-criterion Bradley-Terry loss")
    p.add_argument("--backbone", default="minilm", help="model name (minilm, tiny, smollm2) or an HF checkpoint dir")
    p.add_argument("--train", default="builtin:pairs_train", help="pair file (JSONL/Parquet) or builtin:pairs_train")
    p.add_argument("--out", required=True, help="output directory (absent or empty)")
    p.add_argument("--no-criterion", action="store_true", help="criterion-agnostic baseline (the ablation)")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--batch-size", type=int, default=16, help="pairs per optimiser step")
    p.add_argument("--max-length", type=int, default=192)
    p.add_argument("--freeze-layers", type=int, default=3, help="freeze embeddings + lowest N layers (0 = none)")
    p.add_argument("--max-pairs", type=int, default=0, help="use at most N pairs (0 = all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    p.add_argument("--layout", choices=("auto", "pair", "prefix"), default="auto",
                   help="pair: cross-encoder text pair; prefix: decoder, criterion last, shared prefixes "
                        "(auto: prefix for Llama/Qwen/Mistral decoders, pair otherwise)")
    p.add_argument("--fusion-layers", type=int, default=0,
                   help="prefix layout: the top N layers see criterion and response together (0 = all)")
    p.add_argument("--deepspeed", type=int, choices=(0, 1, 2, 3), default=None, metavar="STAGE",
                   help="train with DeepSpeed ZeRO stage 0-3 (one process, or every rank of torchrun)")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                   help="bfloat16 needs --deepspeed")
    p.add_argument("--grad-checkpointing", action="store_true", help="recompute activations (large decoders)")
    p.add_argument("--anchor-weight", type=float, default=0.0,
                   help="weight of the pointwise anchor term (winners above 0, losers below; rm_train.pair_loss)")
    p.add_argument("--calibration-split", type=float, default=0.0, metavar="FRACTION",
                   help="training prompts kept out of the gradient steps to fit the calibration and veto "
                        "threshold (0 = calibrate on the training prompts)")
    p.add_argument("--calibration-points", type=int, default=None, metavar="N",
                   help="labelled triples scored to fit the calibration and veto threshold (default: "
                        "TrainConfig's 800; fewer: a faster, noisier fit)")
    p.set_defaults(func=run)


def check_numbers(args: argparse.Namespace) -> None:
    from promedical.errors import UserError
    for key in ("epochs", "lr", "batch_size", "max_length", "calibration_points"):
        if getattr(args, key) is not None and not getattr(args, key) > 0:
            raise UserError(f"--{key.replace('_', '-')}: {getattr(args, key)} must be > 0")
    if args.dtype == "bfloat16" and args.deepspeed is None:
        raise UserError("--dtype bfloat16: trains through DeepSpeed; add --deepspeed STAGE (0-3)")
    if not 0 <= args.calibration_split < 1:
        raise UserError(f"--calibration-split: {args.calibration_split} must be in [0, 1)")
    for key in ("freeze_layers", "max_pairs", "threads", "fusion_layers", "anchor_weight"):
        if getattr(args, key) < 0:
            raise UserError(f"--{key.replace('_', '-')}: {getattr(args, key)} must be >= 0")


def run(args: argparse.Namespace) -> int:
    from promedical.actors.models import resolve_model
    from promedical.errors import UserError
    from promedical.reward_model.rm_train import TrainConfig, TrainSetupError, train_reward_model
    from promedical.reward.rubric_io import load_records

    check_numbers(args)
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--out {out}: exists and is not an empty directory; choose a new path")
    records = load_records(builtin_path(args.train))
    if not any(r.pairs for r in records):
        raise UserError(f"--train {args.train}: no pairwise preferences; build them with promedical data pairs")
    points = {} if args.calibration_points is None else {"calibration_points": args.calibration_points}
    cfg = TrainConfig(use_criterion=not args.no_criterion, epochs=args.epochs, lr=args.lr,
                      batch_size=args.batch_size, max_length=args.max_length, freeze_layers=args.freeze_layers,
                      seed=args.seed, max_pairs=args.max_pairs, threads=args.threads, layout=args.layout,
                      fusion_layers=args.fusion_layers,
                      deepspeed_stage=-1 if args.deepspeed is None else args.deepspeed, dtype=args.dtype,
                      grad_checkpointing=args.grad_checkpointing, calibration_split=args.calibration_split,
                      anchor_weight=args.anchor_weight, **points)
    try:
        summary = train_reward_model(resolve_model(args.backbone), records, out, cfg)
    except TrainSetupError as err:
        raise UserError(str(err)) from None
    if summary["rank"] == 0:
        print(json.dumps(summary | {"out": str(out)}, indent=2))
    return 0
