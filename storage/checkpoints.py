"""Checkpoint directories: written under a temporary name, published by rename, last K kept.

    checkpoints/step_000010/   complete checkpoint of the state after 10 steps (marker file COMPLETE)
    checkpoints/.partial-step_000012/   a checkpoint being written; ignored by readers, removed on retry
A crash at any point while writing leaves every earlier complete checkpoint untouched and loadable.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

COMPLETE = "COMPLETE"
START = "start"     # where a run lost before its first checkpoint resumes from: it starts over
_NAME = re.compile(r"^step_(\d{6,})$")


class Checkpoints:
    def __init__(self, root: str | Path, keep: int = 2) -> None:
        if keep < 1:
            raise ValueError("keep must be >= 1")
        self.root = Path(root)
        self.keep = keep

    def begin(self, step: int) -> Path:
        """A fresh, empty temporary directory to write the checkpoint of `step` into."""
        partial = self.root / f".partial-step_{step:06d}"
        if partial.exists():
            shutil.rmtree(partial)
        partial.mkdir(parents=True)
        return partial

    def commit(self, step: int, partial: Path) -> Path:
        """Publish `partial` as the checkpoint of `step` (atomic rename), then prune old ones."""
        (partial / COMPLETE).write_text(str(step))
        _fsync_dir(partial)
        final = self.root / f"step_{step:06d}"
        if final.exists():
            shutil.rmtree(final)
        os.replace(partial, final)
        _fsync_dir(self.root)
        for old in self.complete()[:-self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def complete(self) -> list[Path]:
        """Complete checkpoints, oldest first."""
        if not self.root.is_dir():
            return []
        found = []
        for path in self.root.iterdir():
            match = _NAME.match(path.name)
            if match and (path / COMPLETE).is_file():
                found.append((int(match.group(1)), path))
        return [p for _, p in sorted(found)]

    def latest(self) -> Path | None:
        done = self.complete()
        return done[-1] if done else None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
