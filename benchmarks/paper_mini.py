"""The paper in miniature: GRPO on SmolLM2-135M-Instruct with three rewards, same steps and seeds, each
policy judged before and after on the held-out prompts by a reward model that trained none of them.

Arms (all: the demo preset on data/medical_train.jsonl, same seed, steps, prompts, learning rate):
    promedical  clip(S1 + a*S2, 0, 1+b) - l*S3 from the criterion-injected MiniLM ("minilm-ecir")
    no_veto     the same without the veto term (reward.aggregator=no_veto; the paper's ablation)
    scalar      one scalar per response from the criterion-agnostic twin ("minilm-agnostic",
                reward.aggregator=scalar)
Each arm is trained once per seed (--seeds). Judge: "minilm-ecir-s1", an injected MiniLM with another
seed and recipe (reward_model/ecir.py) that trained no arm, through `promedical eval`: greedy answers on
the held-out healthbench and kqa prompts and on MedSafetyBench's harmful requests (suite medsafety). The
base policy is judged once (greedy answers do not depend on a training seed). Statistics, and the test
stated before any run, in benchmarks/paper_mini_stats.py: per prompt, arms compared over seeds and
prompts with 95% intervals.

    python benchmarks/paper_mini.py [--seeds 0 1 2] [--steps 20] [--prompts 4] [--out runs/paper_mini]
Writes OUT/summary.json, OUT/table.md and docs/paper_mini.png (or --plot). A stopped run is resumed:
finished trainings and evaluations in OUT are reused.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import paper_mini_stats as stats  # noqa: E402  (benchmarks/ is a folder of scripts, not a package)

ARMS = {       # arm -> (reward model, aggregator)
    "promedical": ("minilm-ecir", "promedical"),
    "no_veto": ("minilm-ecir", "no_veto"),
    "scalar": ("minilm-agnostic", "scalar"),
}
JUDGE = "minilm-ecir-s1"
SUITES = ("healthbench", "kqa", "medsafety")
ROLLING = 5         # steps in the plotted running mean of the training reward
ROOT = Path(__file__).resolve().parents[1]


def cli(args: list[str], log: Path) -> float:
    """Run one `promedical` command, its output appended to `log`; seconds of wall time."""
    start = time.perf_counter()
    with open(log, "a") as out:
        out.write(f"\n$ promedical {' '.join(args)}\n")
        out.flush()
        code = subprocess.call([str(Path(sys.executable).with_name("promedical")), *args], stdout=out,
                               stderr=subprocess.STDOUT, cwd=ROOT)
    if code != 0:
        raise SystemExit(f"promedical {args[0]} failed (exit {code}); see {log}")
    return time.perf_counter() - start


def judge(model: str, out: Path, args, log: Path) -> float:
    """Seconds to judge `model` (a name or run directory) on SUITES into `out`; an earlier finished
    evaluation there is reused (0 s), so a stopped benchmark can be rerun."""
    return 0.0 if (out / "results.json").is_file() else _judge(model, out, args, log)


def _judge(model: str, out: Path, args, log: Path) -> float:
    flags = ["eval", "--model", str(model), "--grader", "trained", "--grader-model", JUDGE,
             "--max-new-tokens", str(args.eval_tokens), "--out", str(out)]
    for suite in SUITES:
        flags += ["--suite", suite]
    return cli(flags, log)


def train_curve(run_dir: Path) -> list[dict]:
    from promedical.storage.metrics_log import read_events

    events, _ = read_events(run_dir / "metrics.msgpack")
    keys = ("reward_mean", "s1_mean", "s2_mean", "s3_mean", "veto_rate")
    return [{"step": e["step"], **{k: e[k] for k in keys if k in e}} for e in events if "reward_mean" in e]


def build_model(name: str, log: Path) -> float:
    """Seconds to resolve shipped reward model `name` (its first-use build; about 0 when cached), in a
    child process like every other step, so it reads the recipe the `promedical` commands will read."""
    start = time.perf_counter()
    with open(log, "a") as out:
        code = subprocess.call([sys.executable, "-c", "import sys; from promedical.reward_model.models import "
                                "resolve_reward_model as r; print(r(sys.argv[1]))", name],
                               stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    if code != 0:
        raise SystemExit(f"building reward model {name} failed (exit {code}); see {log}")
    seconds = time.perf_counter() - start
    with open(log, "a") as out:
        out.write(f"reward model {name}: {seconds:.0f} s (about 0 when cached)\n")
    return seconds


def run(args) -> dict:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "paper_mini.log"
    start = time.perf_counter()
    summary = {"settings": vars(args) | {"judge": JUDGE, "suites": SUITES}, "arms": {}}
    earlier = json.loads((out / "summary.json").read_text()) if (out / "summary.json").is_file() else {}
    summary["reward_model_seconds"] = {JUDGE: build_model(JUDGE, log)}
    summary["before_seconds"] = judge("smollm2", out / "eval_base", args, log)
    common = [f"rollout.steps={args.steps}", f"rollout.prompts_per_step={args.prompts}",
              f"rollout.group_size={args.group}", f"rollout.max_new_tokens={args.max_new_tokens}",
              f"algo.lr={args.lr:.8f}", f"run.checkpoint_every={args.steps}",
              "run.keep_checkpoints=1", "run.save_rollouts=false", "run.sinks=[tensorboard]", "reward.grader=trained"]
    for arm, (model, aggregator) in ARMS.items():
        summary["reward_model_seconds"].setdefault(model, build_model(model, log))
        summary["arms"][arm] = {}
        for seed in args.seeds:
            summary["arms"][arm][str(seed)] = train_and_judge(out, arm, seed, common + [
                f"run.seed={seed}", f"reward.model={model}", f"reward.aggregator={aggregator}"],
                earlier.get("arms", {}).get(arm, {}).get(str(seed)), args, log)
            (out / "summary.json").write_text(json.dumps(summary, indent=1))
    dirs = arm_dirs(summary)
    summary["veto_prompts"] = stats.report(out, dirs)
    summary["suites"] = {suite: stats.suite_report(out, dirs, suite) for suite in SUITES}
    summary["wall_seconds"] = time.perf_counter() - start
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def train_and_judge(out: Path, arm: str, seed: int, sets: list[str], done: dict | None, args, log: Path) -> dict:
    """One arm at one seed: trained (or its finished run reused) and judged; seconds and training curve."""
    run_dir = out / f"{arm}-{seed}"
    flags = ["train", "--config", "demo", "--run-dir", str(run_dir)]
    for item in sets:
        flags += ["--set", item]
    finished = done is not None and (run_dir / "checkpoints").is_dir()
    if run_dir.exists() and not finished:
        shutil.rmtree(run_dir)                    # a run stopped half-way starts again
    train_s = done["train_seconds"] if finished else cli(flags, log)
    eval_s = judge(str(run_dir), out / f"eval_{arm}-{seed}", args, log)
    return {"train_seconds": train_s, "eval_seconds": eval_s or (done or {}).get("eval_seconds", 0.0),
            "curve": train_curve(run_dir)}


def arm_dirs(summary: dict) -> dict[str, list[str]]:
    """Each arm's eval directories (one per seed), the base's one first."""
    return {"base": ["eval_base"]} | {arm: [f"eval_{arm}-{seed}" for seed in seeds]
                                      for arm, seeds in summary["arms"].items()}


def _cell(est: dict | None) -> str:
    return "-" if est is None else f"{est['value']:.3f} [{est['low']:.3f}, {est['high']:.3f}]"


def table(summary: dict) -> str:
    """Markdown: per suite and tier metric, the base and each arm over seeds and prompts (95% intervals);
    the veto prompts pooled with the pre-stated test; training reward and seconds per arm."""
    arms = list(summary["arms"])
    lines = [f"| suite | metric (judge {JUDGE}) | base | " + " | ".join(arms) + " |",
             "|---|---|---|" + "---|" * len(arms)]
    for suite, metrics in summary["suites"].items():
        for metric, per_arm in metrics.items():
            lines.append(f"| {suite} | {metric} | " + " | ".join(_cell(per_arm.get(a)) for a in ["base", *arms]) + " |")
    lines += ["", "Veto prompts (held-out HealthBench with veto criteria + medsafety), pooled:", "",
              stats.markdown(summary["veto_prompts"]),
              f"| arm | training reward, mean over seeds of the first {ROLLING} -> last {ROLLING} steps "
              "| train s (all seeds) | judge s |", "|---|---|---|---|"]
    for arm, seeds in summary["arms"].items():
        first, last = zip(*[_ends([p["reward_mean"] for p in r["curve"]]) for r in seeds.values()])
        lines.append(f"| {arm} | {sum(first) / len(first):+.3f} -> {sum(last) / len(last):+.3f} | "
                     f"{sum(r['train_seconds'] for r in seeds.values()):.0f} | "
                     f"{sum(r['eval_seconds'] for r in seeds.values()):.0f} |")
    return "\n".join(lines) + "\n"


def _ends(curve: list[float]) -> tuple[float, float]:
    k = min(ROLLING, len(curve)) or 1
    return sum(curve[:k]) / k, sum(curve[-k:]) / k


def plot(summary: dict, path: Path) -> None:
    """Left: training reward per step per arm (mean over seeds). Right: pooled veto-prompt metrics."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for arm, seeds in summary["arms"].items():
        curves = np.array([[p["reward_mean"] for p in r["curve"]] for r in seeds.values()])
        left.plot(np.arange(1, curves.shape[1] + 1), curves.mean(axis=0), marker=".", label=arm)
    left.set(xlabel="GRPO step", ylabel="mean reward (own reward, own scale)",
             title=f"training reward, mean of {len(summary['settings']['seeds'])} seeds")
    left.legend()
    shown = ("s1", "s3", "veto_rate")
    metrics = summary["veto_prompts"]["metrics"]
    columns = list(metrics["veto_rate"])
    width = 0.8 / len(columns)
    for k, arm in enumerate(columns):
        est = [metrics[m][arm] for m in shown]
        right.bar([i + k * width for i in range(len(shown))], [e["value"] for e in est], width,
                  yerr=[[e["value"] - e["low"] for e in est], [e["high"] - e["value"] for e in est]], capsize=2,
                  label=arm)
    right.set_xticks([i + 0.4 - width / 2 for i in range(len(shown))], shown)
    right.set(title=f"veto prompts, judged by {JUDGE} (95% CI, seeds x prompts)")
    right.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--prompts", type=int, default=4, help="prompts per step")
    p.add_argument("--group", type=int, default=8, help="samples per prompt")
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--eval-tokens", type=int, default=96, help="greedy answer length when judging")
    p.add_argument("--lr", type=float, default=4e-5)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds per arm")
    p.add_argument("--out", default="runs/paper_mini")
    p.add_argument("--plot", default=str(ROOT / "docs" / "paper_mini.png"))
    p.add_argument("--report-only", action="store_true", help="rebuild table and plot from OUT/summary.json")
    args = p.parse_args()
    if args.report_only:
        summary = json.loads((Path(args.out) / "summary.json").read_text())
        if "veto_prompts" not in summary:
            print(f"{args.out}/summary.json: the benchmark has not finished (no statistics yet); "
                  "rerun it without --report-only to resume", file=sys.stderr)
            sys.exit(2)
    else:
        summary = run(args)
    (Path(args.out) / "table.md").write_text(table(summary))
    plot(summary, Path(args.plot))
    print(table(summary))
    print(f"wall {summary.get('wall_seconds', 0):.0f} s; plot {args.plot}")


if __name__ == "__main__":
    main()
