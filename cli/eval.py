"""`promedical eval`: evaluate a policy (and optionally a baseline) on rubric and closed-QA suites."""
from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime
from pathlib import Path

from promedical.cli.shared import add_ray_address_arg
from promedical.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    from promedical.evaluation.suites import DEFAULT_LIMITS, DEFAULT_SUITES

    p = sub.add_parser("eval", help="evaluate a policy on rubric and closed-QA suites")
    p.add_argument("--model", required=True, help="model name (tiny, smollm2), HF checkpoint dir or run dir")
    p.add_argument("--baseline", default=None, help="a second PATH_OR_RUN shown side by side (e.g. the base)")
    p.add_argument("--suite", action="append", default=[], metavar="NAME",
                   help=f"suite name ({', '.join(DEFAULT_LIMITS)}) or a rubric file; repeatable "
                        f"(default: {' '.join(DEFAULT_SUITES)})")
    p.add_argument("--limit", type=int, default=None,
                   help="first N items of each suite (default per suite: "
                        + ", ".join(f"{k} {v}" for k, v in DEFAULT_LIMITS.items()) + ")")
    p.add_argument("--grader", choices=("similarity", "trained", "rule", "judge"), default="similarity",
                   help="rubric verdicts: a reward model thresholded (rule: regex criteria, for tests), "
                        "or an LLM judge")
    p.add_argument("--grader-model", default="minilm", help="reward-model dir for --grader trained/similarity")
    p.add_argument("--threshold", type=float, default=0.5, help="reward-model score counted as 'met'")
    p.add_argument("--judge-url", default=None,
                   help="OpenAI-compatible base URL, e.g. http://host:8000/v1, or 'local' (vLLM in this process)")
    p.add_argument("--judge-model", default=None, help="model name sent to the judge endpoint")
    p.add_argument("--judge-api-key-env", default="OPENAI_API_KEY", help="environment variable with the key")
    p.add_argument("--judge-timeout", type=float, default=30.0, help="seconds per judge call")
    p.add_argument("--judge-retries", type=int, default=2, help="retries of an invalid or failed verdict")
    p.add_argument("--max-new-tokens", type=int, default=256, help="answer length cap (greedy decoding)")
    p.add_argument("--replicas", type=int, default=1, help="generator actors per model")
    p.add_argument("--dtype", default="bfloat16", help="generator dtype")
    add_ray_address_arg(p)
    p.add_argument("--out", default=None, help="results directory (default: beside the model or run)")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    p.set_defaults(func=run)


def verdict_source(args: argparse.Namespace):
    """The rubric grader the flags ask for; UserError naming the missing flag otherwise."""
    from promedical.evaluation.grading import JudgeVerdicts, ThresholdVerdicts

    if args.grader == "judge":
        if not args.judge_url or not args.judge_model:
            raise UserError("--grader judge needs --judge-url URL and --judge-model NAME")
        if args.judge_url == "local":
            return _local_judge(args.judge_model, args.judge_retries)
        from promedical.actors.judge import make_judge
        judge = make_judge(url=args.judge_url, model=args.judge_model, api_key_env=args.judge_api_key_env,
                           timeout_s=args.judge_timeout, retries=args.judge_retries)
        return JudgeVerdicts(judge, name=f"judge {args.judge_model} at {args.judge_url}")
    if args.grader == "trained" and args.grader_model == "minilm":
        raise UserError("--grader trained needs --grader-model DIR, a reward model made by promedical train-rm")
    if not 0 < args.threshold <= 1:
        raise UserError(f"--threshold {args.threshold}: must be in (0, 1]")
    from promedical.reward_model.graders import make_grader
    from promedical.reward_model.models import resolve_reward_model
    path = None if args.grader == "rule" else resolve_reward_model(args.grader_model)
    grader = make_grader(args.grader, path, max_length=256, batch_size=64)
    shown = args.grader if path is None else f"{args.grader} {args.grader_model}"
    return ThresholdVerdicts(grader, threshold=args.threshold, name=f"{shown} (met at v >= {args.threshold})")


def _local_judge(model: str, retries: int):
    """A judge model run in this process with vLLM, verdicts constrained to yes/no (actors/judge.py, the
    code training's judge replicas run), e.g. --judge-url local --judge-model smollm2."""
    from promedical.actors.judge import make_judge
    from promedical.evaluation.grading import JudgeVerdicts

    judge = make_judge(url="local", model=model, retries=retries, dtype="bfloat16", max_prompt_tokens=4095)
    return JudgeVerdicts(judge, name=f"local judge {model} (vLLM, constrained yes/no)")


def _evaluate(targets, suites, source, args) -> dict:
    from promedical.evaluation.generation import GeneratorPool
    from promedical.evaluation.runner import evaluate_model

    results = {}
    for target in targets:
        total = sum(len(s) for s in suites)
        print(f"{target.label}: generating {total} answers with {args.replicas} generator actor(s)"
              + (f" ({target.note})" if target.note else ""), file=sys.stderr)
        pool = GeneratorPool(target.model_path, replicas=args.replicas, num_cpus=1,
                             max_new_tokens=args.max_new_tokens, dtype=args.dtype)
        try:
            results[target.label] = evaluate_model(pool.generate, suites, source)
        finally:
            pool.close()
    return results


def _start_ray_quietly(address: str) -> None:
    """Ray as `promedical train` starts it, but with actor logs kept out of the table and JSON on stdout."""
    import ray
    from promedical.deploy.build import WORKER_ENV

    runtime_env = {"env_vars": dict(WORKER_ENV)}
    if address:
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
    else:
        # "local": a private Ray even when `ray start` left a cluster running on this machine
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, runtime_env=runtime_env,
                 log_to_driver=False, logging_level="ERROR")


def refuse_training_prompts(run_dir: Path, suites) -> None:
    """UserError when a run directory's training prompts (its config's data.prompts) are among the
    prompts of a rubric suite: evaluation is on held-out prompts."""
    import yaml

    from promedical.deploy.run import prompts_path
    from promedical.reward.rubric_io import load_records
    from promedical.reward.splits import check_disjoint

    config_file = run_dir / "config.yaml"
    if not config_file.is_file():
        return
    try:
        spec = (yaml.safe_load(config_file.read_text()) or {})["data"]["prompts"]
    except (KeyError, TypeError, yaml.YAMLError):
        return
    train = load_records(prompts_path(spec))
    for suite in suites:
        if suite.kind == "rubric":
            check_disjoint(train, suite.rubrics, f"{config_file} (data.prompts={spec})", f"--suite {suite.name}")


def run(args: argparse.Namespace) -> int:
    from promedical.evaluation.report import table, to_json, write_report
    from promedical.evaluation.suites import DEFAULT_SUITES, load_suite
    from promedical.evaluation.targets import resolve_target

    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit {args.limit}: give a positive number of items")
    model = resolve_target(args.model)
    targets = [model]
    if args.baseline:
        base = resolve_target(args.baseline)
        if base.label == model.label:
            base = type(base)(label=f"{base.label} (baseline)", model_path=base.model_path,
                              results_root=base.results_root, note=base.note)
        targets = [base, model]
    suites = [load_suite(name, args.limit) for name in (args.suite or DEFAULT_SUITES)]
    for spec in filter(None, (args.model, args.baseline)):
        refuse_training_prompts(Path(spec).expanduser(), suites)
    source = verdict_source(args) if any(s.kind == "rubric" for s in suites) else None

    import ray
    _start_ray_quietly(args.address)
    try:
        results = _evaluate(targets, suites, source, args)
    finally:
        ray.shutdown()
    meta = {"model": f"{model.label} ({model.model_path})",
            "baseline": f"{targets[0].label} ({targets[0].model_path})" if args.baseline else "none",
            "suites": ", ".join(f"{s.name} ({len(s)})" for s in suites),
            "grader": source.name if source else "none", "decoding": "greedy (temperature 0)",
            "max_new_tokens": args.max_new_tokens, "date": f"{datetime.now():%Y-%m-%d %H:%M}"}
    out_dir = Path(args.out) if args.out else model.results_root / f"{datetime.now():%Y%m%d-%H%M%S}"
    report = write_report(out_dir, results, meta)
    if args.json:
        print(json.dumps(to_json(results, meta), indent=1))
    else:
        print(table(results))
    print(f"report: {report}", file=sys.stderr)
    unscored = [f"{m} / {s}" for m, per in results.items() for s, r in per.items() if not r.metrics]
    if unscored:
        print(f"promedical eval: no score for {', '.join(unscored)} (see the warnings above)", file=sys.stderr)
        return 1
    return 0
