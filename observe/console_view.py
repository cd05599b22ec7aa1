"""What the training console draws: the live panel (rich), the plain per-step line, the closing summary."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from promedical.observe.console import Console

PHASES = ("generate", "score", "reference", "train", "sync")    # the step event's time_<phase> keys


def clock_text(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


ETA_WINDOW = 5                       # steps whose median time predicts the rest (the first is slow: warm-up)


def eta_s(events: list[dict[str, Any]], total: int) -> float | None:
    """Seconds left at the median time of the last ETA_WINDOW steps (None before the first step)."""
    if not events:
        return None
    recent = sorted(e["time_step"] for e in events[-ETA_WINDOW:])
    median = (recent[(len(recent) - 1) // 2] + recent[len(recent) // 2]) / 2
    return median * max(0, total - (events[-1]["step"] + 1))


def time_split(m: dict[str, Any]) -> list[tuple[str, float]]:
    """(phase, share of the step's time) for the phases the event names; shares of time_step."""
    total = m.get("time_step") or 0.0
    return [(p, m[f"time_{p}"] / total) for p in PHASES if total > 0 and f"time_{p}" in m]


def plain_line(m: dict[str, Any], total: int, eta: float | None) -> str:
    """One line for a log file or a pipe: everything the live display shows, for one step."""
    split = " ".join(f"{p[:3]} {share:.0%}" for p, share in time_split(m))
    restarts = f"  restarts {m['restarts']}" if m.get("restarts") else ""
    left = f"  ETA {clock_text(eta)}" if eta is not None else ""
    return (f"step {m['step'] + 1}/{total}  reward {m['reward_mean']:+.3f} (sd {m['reward_std']:.3f})  "
            f"S1 {m['s1_mean']:.2f} S2 {m['s2_mean']:.2f} S3 {m['s3_mean']:.2f}  veto {m['veto_rate']:.2f}  "
            f"KL {m['kl']:.4f}  {m['tokens_per_s']:.0f} tok/s  {m['time_step']:.1f}s ({split}){restarts}{left}")


BAR_WIDTH = 24                       # characters of the widest time-split bar
# (event key, label, format) of the figures the summary compares between the first and last step
MOVES = (("reward_mean", "reward", "+.3f"), ("s1_mean", "S1 proficiency", ".3f"),
         ("s2_mean", "S2 bonus", ".3f"), ("s3_mean", "S3 veto", ".3f"), ("veto_rate", "veto rate", ".3f"))


def render(console: Console):
    """The live panel: progress with ETA, the latest step's figures, and where its time went."""
    from rich.panel import Panel
    from rich.progress_bar import ProgressBar
    from rich.table import Table

    events, total = console.events, console.total
    done = events[-1]["step"] + 1 if events else 0
    eta = eta_s(events, total)
    head = Table.grid(padding=(0, 2))
    head.add_row(f"[bold]step {done}/{total}[/]", ProgressBar(total=total, completed=done, width=40),
                 f"elapsed {clock_text(console.elapsed())}",
                 f"ETA {clock_text(eta)}" if eta is not None else "[dim]starting actors...[/]")
    rows = [head]
    if events:
        m = events[-1]
        figures = Table.grid(padding=(0, 3))
        figures.add_row(f"reward [bold]{m['reward_mean']:+.3f}[/] (sd {m['reward_std']:.3f})",
                        f"S1 {m['s1_mean']:.2f}  S2 {m['s2_mean']:.2f}  S3 {m['s3_mean']:.2f}",
                        f"veto rate {m['veto_rate']:.2f}")
        figures.add_row(f"KL {m['kl']:.4f}", f"{m['tokens_per_s']:.0f} tokens/s",
                        f"restarts {m['restarts']}" if "restarts" in m else "")   # when the loop counts them
        rows += ["", figures, "", _time_table(m)]
    grid = Table.grid()
    for row in rows:
        grid.add_row(row)
    return Panel(grid, title=f"ProMedical  {console.run_dir.name}", title_align="left",
                 subtitle=f"actor logs: {console.run_dir / 'logs'}", subtitle_align="left")


def _time_table(m: dict[str, Any]):
    from rich.table import Table

    table = Table.grid(padding=(0, 1))
    table.add_row(f"[bold]step time {m['time_step']:.2f} s[/]", "")
    for phase, share in time_split(m):
        bar = "█" * max(1, round(share * BAR_WIDTH)) if share > 0 else ""
        table.add_row(f"  {phase:<10}", f"[cyan]{bar:<{BAR_WIDTH}}[/] {share:4.0%}  {m[f'time_{phase}']:.2f} s")
    return table


def summary_lines(run_dir: Path, status: str, elapsed: float) -> list[str]:
    """How the run moved (first step -> last), where its files are, and the commands to run next."""
    from promedical.storage.metrics_log import iter_events

    events = list(iter_events(run_dir / "metrics.msgpack"))
    lines = [f"run {status}: {len(events)} step(s) in {clock_text(elapsed)}  ({run_dir})"]
    if events:
        first, last = events[0], events[-1]
        lines.append(f"how it moved (step {first['step'] + 1} -> {last['step'] + 1})")
        lines += [f"  {label:<16}{first[key]:{fmt}} -> {last[key]:{fmt}}"
                  for key, label, fmt in MOVES if key in first and key in last]
    files = [("metric log", run_dir / "metrics.msgpack"), ("TensorBoard", run_dir / "tensorboard"),
             ("W&B offline", run_dir / "wandb"), ("MLflow", run_dir / "mlruns"),
             ("checkpoints", run_dir / "checkpoints"), ("actor logs", run_dir / "logs"),
             ("report", run_dir / "report")]
    lines += ["files"] + [f"  {label:<16}{path}" for label, path in files if _nonempty(path)]
    lines += ["next"] + [f"  {cmd}" for cmd in next_commands(run_dir)]
    return lines


def _nonempty(path: Path) -> bool:
    return path.is_file() or (path.is_dir() and any(path.iterdir()))


def next_commands(run_dir: Path) -> list[str]:
    commands = [f"promedical report {run_dir}            # plots and a summary in {run_dir / 'report'}",
                f"promedical eval --model {run_dir}      # the trained policy on the held-out suites"]
    if _nonempty(run_dir / "tensorboard"):
        commands.append(f"tensorboard --logdir {run_dir / 'tensorboard'}")
    if _nonempty(run_dir / "wandb"):
        commands.append(f"wandb sync {run_dir / 'wandb'}/offline-run-*")
    if _nonempty(run_dir / "mlruns"):
        commands.append(f"mlflow ui --backend-store-uri {run_dir / 'mlruns'}")
    if _nonempty(run_dir / "checkpoints"):
        commands.append(f"promedical train --resume {run_dir}   # continue from the latest checkpoint")
    return commands
