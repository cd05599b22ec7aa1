"""The operator's terminal during `promedical train`: a live display on a TTY, one plain line per step
otherwise, and a closing summary of how the run went, where its files are and what to run next.

    console = Console(total_steps, run_dir)      # live when the stream is a terminal
    console.open()                               # before the actors start: "starting actors" + elapsed
    console.step(event)                          # each step event, as logged
    console.close("finished")                    # stops the display, prints the summary
"""
from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, TextIO

from promedical.observe.actor_logs import quiet_driver_warnings, worth_showing
from promedical.observe.console_view import eta_s, plain_line, render, summary_lines

TAIL_INTERVAL_S = 0.5                                           # --verbose: how often actor logs are read


class LogTail:
    """Streams new lines of RUN_DIR/logs/*.log to `emit`, leaving out the known harmless ones."""

    def __init__(self, log_dir: Path, emit: Callable[[str], None], offsets: dict[Path, int] | None = None) -> None:
        self.log_dir, self.emit = log_dir, emit
        self._offsets = offsets if offsets is not None else {}   # shared across reopenings: no line twice
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="actor-log-tail", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2 * TAIL_INTERVAL_S)
        self.poll()                                   # the lines written since the last read

    def poll(self) -> None:
        for path in sorted(self.log_dir.glob("*.log")):
            with open(path, "rb") as f:
                f.seek(self._offsets.get(path, 0))
                data = f.read()
            complete = data[:data.rfind(b"\n") + 1]
            self._offsets[path] = self._offsets.get(path, 0) + len(complete)
            for line in complete.decode("utf-8", "replace").splitlines():
                if worth_showing(line):
                    self.emit(f"[{path.stem}] {line}")

    def _run(self) -> None:
        while not self._stop.wait(TAIL_INTERVAL_S):
            self.poll()


class Console:
    """Shows a run's progress on `stream` (stdout): live with `rich` on a terminal, plain lines otherwise."""

    def __init__(self, total: int, run_dir: str | Path, *, stream: TextIO | None = None,
                 live: bool | None = None, verbose: bool = False,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.total, self.run_dir = total, Path(run_dir)
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self.verbose, self.clock = verbose, clock
        self.events: list[dict[str, Any]] = []
        self.started = clock()
        self._live = None
        self._tail: LogTail | None = None
        self._tail_offsets: dict[Path, int] = {}
        self._opened = self._closed = False

    def __enter__(self) -> "Console":
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()                 # a failure before the loop: the terminal is left as it was found

    def open(self) -> None:
        """Start the live display (and the --verbose log stream); a second call does nothing until close().

        A run that resumes after a failure (deploy/run.py's attempts) closes and opens again: the failed
        attempt's summary stays on screen, and the display continues with the next attempt's steps.
        """
        if self._opened and not self._closed:
            return
        self._opened, self._closed = True, False
        quiet_driver_warnings()
        if self.live:
            from rich.console import Console as RichConsole
            from rich.live import Live

            self._rich = RichConsole(file=self.stream)
            self._live = Live(console=self._rich, refresh_per_second=2, transient=False,
                              get_renderable=lambda: render(self))
            self._live.start()
        if self.verbose:
            self._tail = LogTail(self.run_dir / "logs", self._emit, self._tail_offsets)
            self._tail.start()

    def _emit(self, line: str) -> None:
        if self._live is not None:
            self._rich.print(line, markup=False, highlight=False)
        else:
            self.stream.write(line + "\n")
            self.stream.flush()

    def note(self, line: str) -> None:
        """One line about the run's set-up (e.g. a resolved `auto` dtype), shown above the progress."""
        self._emit(line)

    def step(self, m: dict[str, Any]) -> None:
        self.events.append(m)
        if self._live is None:
            self._emit(plain_line(m, self.total, eta_s(self.events, self.total)))

    def elapsed(self) -> float:
        return self.clock() - self.started

    def _stop(self) -> None:
        if self._tail is not None:
            self._tail.stop()
            self._tail = None
        if self._live is not None:
            self._live.stop()
            self._live = None

    def close(self, status: str) -> None:
        """Stop the display and print the summary (once per open)."""
        self._stop()
        if self._closed:
            return
        self._closed = True
        for line in summary_lines(self.run_dir, status, self.elapsed()):
            self.stream.write(line + "\n")
        self.stream.flush()
