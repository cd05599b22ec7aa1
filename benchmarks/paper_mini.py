"""The paper in miniature: GRPO on SmolLM2-135M-Instruct with three rewards, same steps and seeds, each
policy judged before and after on the held-out prompts by a reward model that trained none of them.

Arms (all: the demo preset on data/medical_train.jsonl, same seed, steps, prompts, learning rate):
    promedical  clip(S1 + a*S2, 0, 1+b) - l*S3 from the criterion-injected MiniLM ("minilm-ecir")
    no_veto     the same without the veto term (reward.aggregator=no_veto; the paper's ablation)
    scalar      one scalar per response from the criterion-agnostic twin ("minilm-agnostic",
                reward.aggregator=scalar)
Judge: "minilm-ecir-s1", an injected MiniLM with another seed and recipe (reward_model/ecir.py), through
`promedical eval` (greedy answers on the held-out healthbench + kqa suites; S1, S2, S3, veto rate,
HealthBench score with 95% bootstrap intervals). The base policy is judged once: "before" is the same
model for every arm.

    python benchmarks/paper_mini.py [--steps 20] [--prompts 4] [--lr 4e-5] [--out runs/paper_mini]
Writes OUT/summary.json, OUT/table.md and docs/paper_mini.png (or --plot).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ARMS = {       # arm -> (reward model, aggregator)
    "promedical": ("minilm-ecir", "promedical"),
    "no_veto": ("minilm-ecir", "no_veto"),
    "scalar": ("minilm-agnostic", "scalar"),
}
JUDGE = "minilm-ecir-s1"
SUITES = ("healthbench", "kqa")
METRICS = ("healthbench", "s1", "s2", "s3", "veto_rate")
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


def judge(model: str, out: Path, args, log: Path) -> tuple[dict, float]:
    """Judge-scored held-out metrics of `model` (a name or run directory): {suite: {metric: estimate}}.
    An earlier finished evaluation in `out` is reused (0 s), so a stopped benchmark can be rerun."""
    if (out / "results.json").is_file():
        seconds = 0.0
    else:
        seconds = _judge(model, out, args, log)
    models = json.loads((out / "results.json").read_text())["models"]
    per_suite = next(iter(models.values()))
    return {s: per_suite[s]["metrics"] for s in per_suite}, seconds


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
    summary["before"], summary["before_seconds"] = judge("smollm2", out / "eval_base", args, log)
    common = [f"rollout.steps={args.steps}", f"rollout.prompts_per_step={args.prompts}",
              f"rollout.group_size={args.group}", f"rollout.max_new_tokens={args.max_new_tokens}",
              f"algo.lr={args.lr:.8f}", f"run.seed={args.seed}", f"run.checkpoint_every={args.steps}",
              "run.keep_checkpoints=1", "run.save_rollouts=false", "run.sinks=[tensorboard]", "reward.grader=trained"]
    for arm, (model, aggregator) in ARMS.items():
        summary["reward_model_seconds"].setdefault(model, build_model(model, log))
        run_dir = out / arm
        flags = ["train", "--config", "demo", "--run-dir", str(run_dir)]
        for item in common + [f"reward.model={model}", f"reward.aggregator={aggregator}"]:
            flags += ["--set", item]
        done = earlier.get("arms", {}).get(arm)
        if run_dir.exists() and not (done and (run_dir / "checkpoints").is_dir()):
            shutil.rmtree(run_dir)                    # a run stopped half-way starts again
        train_s = done["train_seconds"] if done and (run_dir / "checkpoints").is_dir() else cli(flags, log)
        after, eval_s = judge(str(run_dir), out / f"eval_{arm}", args, log)
        eval_s = done["eval_seconds"] if done and not eval_s else eval_s
        summary["arms"][arm] = {"train_seconds": train_s, "eval_seconds": eval_s, "after": after,
                                "curve": train_curve(run_dir)}
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
    summary["wall_seconds"] = time.perf_counter() - start
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def _cell(est: dict | None) -> str:
    return "-" if est is None else f"{est['value']:.3f} [{est['low']:.3f}, {est['high']:.3f}]"


def table(summary: dict) -> str:
    """Markdown: one row per (suite, metric), before and each arm's after, with 95% intervals."""
    arms = list(summary["arms"])
    head = f"| suite | metric (judge {JUDGE}) | before (base) | " + " | ".join(f"after {a}" for a in arms) + " |"
    lines = [head,
             "|---|---|---|" + "---|" * len(arms)]
    for suite in SUITES:
        for metric in METRICS:
            before = summary["before"].get(suite, {}).get(metric)
            if before is None:
                continue
            cells = [_cell(summary["arms"][a]["after"].get(suite, {}).get(metric)) for a in arms]
            lines.append(f"| {suite} | {metric} | {_cell(before)} | " + " | ".join(cells) + " |")
    lines += ["", f"| arm | training reward, mean of the first {ROLLING} -> last {ROLLING} steps | train s | judge s |",
              "|---|---|---|---|"]
    for arm, r in summary["arms"].items():
        c = [p["reward_mean"] for p in r["curve"]]
        k = min(ROLLING, len(c))
        moved = f"{sum(c[:k]) / k:+.3f} -> {sum(c[-k:]) / k:+.3f}" if c else "-"
        lines.append(f"| {arm} | {moved} | {r['train_seconds']:.0f} | {r['eval_seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def plot(summary: dict, path: Path) -> None:
    """Left: training reward per step per arm (each arm's own reward). Right: judge metrics before/after."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for arm, r in summary["arms"].items():
        steps, rewards = [p["step"] + 1 for p in r["curve"]], [p["reward_mean"] for p in r["curve"]]
        line, = left.plot(steps, rewards, marker=".", alpha=0.35, linewidth=0.8)
        k = min(ROLLING, len(rewards))
        windows = [rewards[max(0, i - k + 1):i + 1] for i in range(len(rewards))]
        smooth = [sum(w) / len(w) for w in windows]
        left.plot(steps, smooth, color=line.get_color(), linewidth=2, label=f"{arm} (mean of last {k})")
    left.set(xlabel="GRPO step", ylabel="mean reward (own reward, own scale)", title="training reward")
    left.legend()
    shown = [("healthbench", "healthbench"), ("healthbench", "s1"), ("healthbench", "veto_rate"), ("kqa", "s1")]
    columns = [("before", summary["before"])] + [(a, r["after"]) for a, r in summary["arms"].items()]
    width = 0.8 / len(columns)
    for k, (label, res) in enumerate(columns):
        xs, ys, errs = [], [], [[], []]
        for i, (suite, metric) in enumerate(shown):
            est = res.get(suite, {}).get(metric)
            if est:
                xs.append(i + k * width)
                ys.append(est["value"])
                errs[0].append(est["value"] - est["low"])
                errs[1].append(est["high"] - est["value"])
        right.bar(xs, ys, width, yerr=errs, capsize=2, label=label)
    right.set_xticks([i + 0.4 - width / 2 for i in range(len(shown))], [f"{s}\n{m}" for s, m in shown], fontsize=8)
    right.set(title=f"held-out, judged by {JUDGE} (95% CI)")
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
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/paper_mini")
    p.add_argument("--plot", default=str(ROOT / "docs" / "paper_mini.png"))
    p.add_argument("--report-only", action="store_true", help="rebuild table and plot from OUT/summary.json")
    args = p.parse_args()
    if args.report_only:
        summary = json.loads((Path(args.out) / "summary.json").read_text())
    else:
        summary = run(args)
    (Path(args.out) / "table.md").write_text(table(summary))
    plot(summary, Path(args.plot))
    print(table(summary))
    print(f"wall {summary.get('wall_seconds', 0):.0f} s; plot {args.plot}")


if __name__ == "__main__":
    main()
