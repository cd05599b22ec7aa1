"""A run's report: PNG plots of its step metrics and a short markdown summary, in RUN_DIR/report/."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from promedical.errors import UserError

# file stem -> (title, y label, [(event key, legend label)])
PLOTS: dict[str, tuple[str, str, list[tuple[str, str]]]] = {
    "reward": ("Reward and tier scores", "score",
               [("reward_mean", "reward"), ("s1_mean", "S1 proficiency"), ("s2_mean", "S2 bonus count"),
                ("s3_mean", "S3 veto count")]),
    "veto_rate": ("Veto rate", "fraction of responses", [("veto_rate", "veto rate")]),
    "kl": ("KL to the reference policy", "KL", [("kl", "KL")]),
    "lengths": ("Response length", "tokens",
                [("response_length_mean", "mean"), ("response_length_max", "max")]),
    "throughput": ("Throughput", "tokens / s",
                   [("tokens_per_s", "generation"), ("step_tokens_per_s", "whole step")]),
}
TOTAL_STYLE = {"color": "black", "linestyle": "--", "zorder": 3}   # the total stays visible over a tier
# (key, label, format) rows of the summary table
SUMMARY_ROWS = (("reward_mean", "reward mean", "+.3f"), ("s1_mean", "S1", ".3f"), ("s2_mean", "S2", ".3f"),
                ("s3_mean", "S3", ".3f"), ("veto_rate", "veto rate", ".3f"), ("kl", "KL", ".4f"),
                ("response_length_mean", "response length", ".1f"), ("staleness_mean", "staleness", ".2f"),
                ("tokens_per_s", "tokens/s (generation)", ".0f"), ("time_step", "seconds per step", ".2f"))


def load_step_events(run_dir: Path) -> list[dict[str, Any]]:
    """The run's step events in log order (end-of-run and other non-step events left out)."""
    from promedical.observe.metrics_view import check_run_dir
    from promedical.storage.metrics_log import read_events

    check_run_dir(run_dir)
    events, _ = read_events(run_dir / "metrics.msgpack")
    steps = [e for e in events if "event" not in e and "step" in e]
    if not steps:
        raise UserError(f"{run_dir}: metrics.msgpack holds no step events yet; run at least one step first")
    return steps


def restart_events(run_dir: Path) -> list[dict[str, Any]]:
    """Replaced replicas and resumed attempts, in log order."""
    from promedical.storage.metrics_log import read_events
    return [e for e in read_events(run_dir / "metrics.msgpack")[0] if e.get("event") == "restart"]


def plot(events: list[dict[str, Any]], stem: str, out_dir: Path) -> Path | None:
    """One PNG; None when the run logged none of the plot's keys."""
    try:
        import matplotlib
    except ImportError:
        raise UserError("promedical report needs matplotlib; install it with `pip install matplotlib`") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    title, ylabel, series = PLOTS[stem]
    present = [(k, label) for k, label in series if any(k in e for e in events)]
    if not present:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for key, label in present:
        points = [(int(e["step"]) + 1, float(e[key])) for e in events if key in e]
        style = TOTAL_STYLE if key == "reward_mean" and len(present) > 1 else {}
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", markersize=3, label=label, **style)
    ax.set(title=title, xlabel="step", ylabel=ylabel)
    ax.grid(alpha=0.3)
    if len(present) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = out_dir / f"{stem}.png"
    fig.savefig(path)
    plt.close(fig)
    return path


def summary(run_dir: Path, events: list[dict[str, Any]], images: list[Path]) -> str:
    """Markdown: what ran, first/last/min/max of the key metrics, and the plots."""
    first, last = events[0], events[-1]
    total_s = sum(float(e.get("time_step", 0.0)) for e in events)
    lines = [f"# Run report: {run_dir.name}", "",
             f"{len(events)} steps (step {int(first['step']) + 1} to {int(last['step']) + 1}), "
             f"policy version {int(last['policy_version'])} at the end, {total_s:.1f} s of step time.", "",
             "| metric | first | last | min | max |", "|---|---|---|---|---|"]
    for key, label, fmt in SUMMARY_ROWS:
        values = [float(e[key]) for e in events if key in e]
        if values:
            cells = [format(v, fmt) for v in (values[0], values[-1], min(values), max(values))]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    restarts = restart_events(run_dir)
    if restarts:
        by_role: dict[str, int] = {}
        for e in restarts:
            by_role[e["role"]] = by_role.get(e["role"], 0) + 1
        lost = sum(float(e["seconds_lost"]) for e in restarts)
        lines += [f"{len(restarts)} restart(s) ({', '.join(f'{r} {n}' for r, n in sorted(by_role.items()))}), "
                  f"{lost:.1f} s lost.", ""]
    lines += [f"![{p.stem}]({p.name})" for p in images]
    return "\n".join(lines) + "\n"


def write_report(run_dir: Path) -> Path:
    """Write RUN_DIR/report/{reward,veto_rate,kl,lengths,throughput}.png and summary.md; returns the dir."""
    events = load_step_events(run_dir)
    out_dir = run_dir / "report"
    out_dir.mkdir(exist_ok=True)
    images = [p for p in (plot(events, stem, out_dir) for stem in PLOTS) if p is not None]
    (out_dir / "summary.md").write_text(summary(run_dir, events, images), encoding="utf-8")
    return out_dir
