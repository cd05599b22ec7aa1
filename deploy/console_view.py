"""What the training console draws: the live panel (rich) and the closing summary (plain text)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from promedical.deploy.console import clock_text, eta_s, time_split

if TYPE_CHECKING:
    from promedical.deploy.console import Console

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
