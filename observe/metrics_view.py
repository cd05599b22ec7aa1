"""Live per-step metric records from a local run directory or a cluster job, as a table or JSON lines.

A local run is read from RUN_DIR/metrics.msgpack by byte offset (storage.metrics_log.read_events).
A job's run dir lives on the cluster, so its driver (deploy/job_entry.py) echoes each logged event to
stdout as one line `METRICS_PREFIX <json>`; the client reads them back from the job's log stream.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from promedical.errors import UserError
from promedical.storage.checkpoints import START

METRICS_PREFIX = "PROMEDICAL_METRICS "   # one logged event per stdout line of a job's driver
END_PREFIX = "PROMEDICAL_END "           # the driver's last line: {"status": ..., "run_dir": ...}
END_EVENT = "run_end"                    # a metric event with event=run_end closes a run's log
DONE_MARKER = "DONE"                     # RUN_DIR/DONE: the run is over (written by the job driver)

# (header, event key, width, format) of each column of the table view.
COLUMNS: tuple[tuple[str, str, int, str], ...] = (
    ("step", "step", 5, "d"), ("ver", "policy_version", 4, "d"),
    ("reward", "reward_mean", 7, "+.3f"), ("S1", "s1_mean", 5, ".2f"), ("S2", "s2_mean", 5, ".2f"),
    ("S3", "s3_mean", 5, ".2f"), ("veto", "veto_rate", 5, ".2f"), ("KL", "kl", 7, ".4f"),
    ("len", "response_length_mean", 5, ".0f"), ("stale", "staleness_mean", 5, ".2f"),
    ("tok/s", "tokens_per_s", 7, ".0f"), ("gen", "time_generate", 6, ".2f"),
    ("score", "time_score", 6, ".2f"), ("ref", "time_reference", 6, ".2f"),
    ("train", "time_train", 6, ".2f"), ("sync", "time_sync", 6, ".2f"), ("step_s", "time_step", 6, ".2f"),
)
HEADER_EVERY = 25                        # table rows between repeated headers


def is_end(event: dict[str, Any]) -> bool:
    return event.get("event") == END_EVENT


def header() -> str:
    return " ".join(f"{name:>{width}}" for name, _, width, _ in COLUMNS)


def _cell(value: Any, width: int, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-".rjust(width)
    return format(int(value) if fmt == "d" else float(value), fmt).rjust(width)


def row(event: dict[str, Any]) -> str:
    """One table row; the step is shown 1-based like the trainer's progress line."""
    shown = {**event, "step": int(event["step"]) + 1}
    return " ".join(_cell(shown.get(key), width, fmt) for _, key, width, fmt in COLUMNS)


def to_json(event: dict[str, Any]) -> str:
    """One event as a single JSON line (non-finite floats become null, so any JSON parser reads it)."""
    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return {k: clean(x) for k, x in v.items()} if isinstance(v, dict) else v
    return json.dumps(clean(event), separators=(",", ":"), sort_keys=True)


def parse_line(line: str) -> dict[str, Any] | None:
    """The event carried by one driver log line, or None for any other line."""
    start = line.find(METRICS_PREFIX)
    if start < 0:
        return None
    try:
        event = json.loads(line[start + len(METRICS_PREFIX):])
    except json.JSONDecodeError:
        return None
    return event if isinstance(event, dict) and "step" in event else None


def check_run_dir(path: Path) -> None:
    if not path.is_dir():
        raise UserError(f"run directory {path} not found; give a RUN_DIR written by `promedical train` or a job id")
    if not (path / "config.yaml").is_file() and not (path / "metrics.msgpack").exists():
        raise UserError(f"{path} is not a run directory (no config.yaml or metrics.msgpack); "
                        f"give the directory `promedical train --run-dir` wrote")


def run_dir_events(path: Path, follow: bool, poll_s: float = 0.5,
                   sleep: Callable[[float], None] = time.sleep) -> Iterator[dict[str, Any]]:
    """Step events of a local run in log order; with `follow`, waits for more until the run ends."""
    from promedical.storage.metrics_log import read_events

    check_run_dir(path)
    log, offset = path / "metrics.msgpack", 0
    while True:
        done = (path / DONE_MARKER).exists()    # checked before reading, so the last read drains the log
        events, offset = read_events(log, offset)
        for event in events:
            if is_end(event):
                return
            yield event
        if not follow or done:
            return
        sleep(poll_s)


def log_events(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Step events echoed in a job's log lines; stops at the run's end event."""
    for line in lines:
        event = parse_line(line)
        if event is None:
            continue
        if is_end(event):
            return
        yield event


def is_run_dir_target(target: str) -> bool:
    """A path-looking target is a run dir (and must exist); a bare name is a job id."""
    return Path(target).exists() or "/" in target or target.startswith(".")


def render(events: Iterable[dict[str, Any]], as_json: bool, write: Callable[[str], None]) -> int:
    """Write one line per event (with table headers unless JSON); returns the number of events."""
    count = 0
    for event in events:
        if not as_json and event.get("event") == "restart":
            write(restart_line(event))
            continue
        if not as_json and count % HEADER_EVERY == 0:
            write(header())
        write(to_json(event) if as_json else row(event))
        count += 1
    return count


def restart_line(event: dict[str, Any]) -> str:
    """A replaced replica or a resumed run, between the step rows."""
    resumed = event.get("resumed_from")
    what = "replaced" if resumed is None else "run started over" if resumed == START else f"run resumed from {resumed}"
    return (f"  restart at step {int(event['step']) + 1}: {event['role']} replica {event['replica']} "
            f"{event['cause']}, {what}, {float(event['seconds_lost']):.1f} s lost")
