"""`promedical serve-rm`: the reward model behind OpenRLHF's remote reward-model HTTP protocol."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve-rm", help="serve rubric rewards over HTTP (OpenRLHF --remote_rm_url protocol)")
    p.add_argument("--rubrics", default="data/medical.jsonl", help="rubric file (JSONL/Parquet) the prompts come from")
    p.add_argument("--grader", default="trained", choices=("rule", "similarity", "trained"))
    p.add_argument("--model", default="minilm-ecir", help="model name or checkpoint dir (not for --grader rule)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--alpha", type=float, default=0.2)
    p.add_argument("--beta", type=float, default=0.5)
    p.add_argument("--lam", type=float, default=1.5)
    p.add_argument("--aggregator", default="promedical")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-length", type=int, default=192)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--dtype", choices=("auto", "float32", "bfloat16"), default="auto",
                   help="trained grader weights (auto: bf16 on GPU, fp32 on CPU)")
    p.set_defaults(func=run)


def build_scorer(args: argparse.Namespace, rubrics: dict):
    """A function (prompt_ids, responses) -> (rewards, s1, s2, s3) over the RewardModel role."""
    import pyarrow as pa

    from promedical.actors.reward_model import RewardModel
    from promedical.errors import UserError
    from promedical.reward.aggregate import AGGREGATORS, RewardShape
    from promedical.reward_model.models import resolve_reward_model
    from promedical.reward_model.rm_server import scores_columns

    problems = RewardShape(alpha=args.alpha, beta=args.beta, lam=args.lam).problems()
    if problems:
        raise UserError(f"--alpha/--beta/--lam: {problems[0]}")
    if args.aggregator not in AGGREGATORS:
        raise UserError(f"--aggregator {args.aggregator!r}: choose one of {sorted(AGGREGATORS)}")
    model_path = None if args.grader == "rule" else resolve_reward_model(args.model)
    role = RewardModel(grader=args.grader, model_path=model_path, aggregator=args.aggregator, alpha=args.alpha,
                       beta=args.beta, lam=args.lam, bonus_threshold=0.5, veto_threshold=0.5,
                       batch_size=args.batch_size, max_length=args.max_length, threads=args.threads,
                       dtype=args.dtype)

    def scorer(prompt_ids: list[str], responses: list[str]):
        batch = pa.RecordBatch.from_pydict({"prompt_id": prompt_ids, "response_text": responses})
        out = role.score(batch, rubrics)
        return scores_columns({k: out.column(k).to_pylist() for k in ("reward", "s1", "s2", "s3")})

    return scorer


def run(args: argparse.Namespace) -> int:
    from promedical.reward_model.rm_server import make_server
    from promedical.reward.rubric_io import load_records

    rubrics = {r.prompt_id: r for r in load_records(args.rubrics)}
    server = make_server(build_scorer(args, rubrics), rubrics, args.host, args.port)
    host, port = server.server_address[:2]
    print(f"serving {len(rubrics)} rubrics at http://{host}:{port}/get_reward (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0
