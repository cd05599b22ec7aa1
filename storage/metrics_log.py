"""Append-only metric event log: one msgpack map per event, each tagged with its step and policy version.

A reader tolerates a torn last frame (a crash mid-write): it stops at the last complete event.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import msgpack


class MetricsLog:
    """Writes step events durably (flush + fsync per event) to one append-only file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "ab")

    def append(self, event: dict[str, Any]) -> None:
        if "step" not in event or "policy_version" not in event:
            raise ValueError("a metric event must carry 'step' and 'policy_version'")
        self._file.write(msgpack.packb(event, use_bin_type=True))
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def read_events(path: str | Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Complete events from byte `offset` on, and the offset after the last complete one."""
    path = Path(path)
    if not path.exists():
        return [], offset
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read()
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
    unpacker.feed(data)
    events: list[dict[str, Any]] = []
    consumed = 0
    for event in unpacker:
        events.append(event)
        consumed = unpacker.tell()
    return events, offset + consumed


def truncate_before(path: str | Path, step: int) -> int:
    """Keep the step events before `step` and drop the rest and every marker but restarts (a resumed run
    redoes those steps and writes its own run_end; a restart happened whatever is redone); the file is
    replaced atomically. The number of events kept."""
    from promedical.storage.atomic import atomic_write_bytes

    events, _ = read_events(path)
    kept = [e for e in events if (e["step"] < step and "event" not in e) or e.get("event") == "restart"]
    atomic_write_bytes(path, b"".join(msgpack.packb(e, use_bin_type=True) for e in kept))
    return len(kept)


def iter_events(path: str | Path) -> Iterator[dict[str, Any]]:
    """The per-step metric events of a log, without markers such as the final {"event": "run_end"}."""
    events, _ = read_events(path)
    yield from (e for e in events if "event" not in e)
