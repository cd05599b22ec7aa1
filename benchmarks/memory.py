"""Peak resident memory of a process tree, sampled in a background thread (benchmarks only)."""
from __future__ import annotations

import threading
import time

import psutil


class TreeMemory:
    """Samples the summed RSS of `pid` and all its descendants (Ray workers included) every `period` s.

    RSS counts pages shared between processes once per process, so the figure is an upper bound.
    """

    def __init__(self, pid: int, period: float = 0.25) -> None:
        self.root = psutil.Process(pid)
        self.period = period
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        total = 0
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0
        for proc in procs:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, self._sample())
            time.sleep(self.period)

    def __enter__(self) -> "TreeMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
