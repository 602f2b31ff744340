"""Live console status of long commands that run work elsewhere: matrix cells and benchmark cases.

Each matrix cell is a child process whose output goes to its own log (the logs stay: they are
the record). The child prints stage events and plain progress lines (`experiments.progress`);
`CellBoard` tails every running cell's log and keeps one status line per cell:

    full-s0-cpu                [6m10s] composition step 120/800, 3.20 steps/s, 3m32s left
    no-style-regressor-s0-cpu  [6m10s] evaluation running (25s)

In a terminal the block of lines is redrawn in place (ANSI cursor moves, no scrolling); in a log
or a pipe the changed lines are printed plainly every `interval` seconds (D2M_PROGRESS_EVERY, 30 s); with `--quiet`
(D2M_PROGRESS=off) nothing is shown. Lines that must stay (a cell finished) go through
`CellBoard.print`, which writes them above the live block.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from experiments.progress import ENV_EVERY, ENV_MODE, console_mode, format_duration, line_interval, parse_line

CHILD_EVERY = 2.0  # seconds between progress lines in a cell's log: often enough for a live status


def child_env() -> dict[str, str]:
    """Environment for a cell's process: plain progress lines into its log, often."""
    return {ENV_MODE: "lines", ENV_EVERY: str(CHILD_EVERY)}


@dataclass
class _Cell:
    log: Path
    started: float
    offset: int = 0
    partial: str = ""
    last: dict | None = None
    last_seen: float = 0.0
    printed: str = field(default="", compare=False)


def describe(last: dict | None, since: float) -> str:
    """The status text of a cell from the last line its log holds (None: nothing yet)."""
    if last is None:
        return "starting (loading libraries)"
    stage, text = last["stage"], last["text"]
    if "step" in last:
        return f"{stage} {text}"
    if text == "start":
        return f"{stage} running ({format_duration(since)})"
    if text in ("done", "cached"):
        return f"{stage} {text} ({format_duration(since)} ago)"
    if text == "waiting":  # a shared stage that another cell is training; this one takes it when done
        return f"{stage} waiting for the run that trains it ({format_duration(since)})"
    return f"{stage} {text}"


class CellBoard:
    """One live status line per running cell, read from the cells' logs by a polling thread."""

    def __init__(self, stream: TextIO | None = None, mode: str | None = None, interval: float | None = None,
                 poll: float = 0.5):
        self.stream = stream or sys.stderr
        self.mode = mode or console_mode()
        self.interval = (poll if self.mode == "bar" else line_interval()) if interval is None else interval
        self.poll_every = min(poll, self.interval) if self.interval > 0 else poll
        self._cells: dict[str, _Cell] = {}
        self._lock = threading.RLock()
        self._drawn = 0
        self._last_plain = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # the runner's side
    def watch(self, label: str, log: Path) -> None:
        with self._lock:
            self._cells[label] = _Cell(Path(log), time.monotonic())

    def unwatch(self, label: str) -> None:
        with self._lock:
            self._cells.pop(label, None)
            self._redraw()

    def print(self, text: str) -> None:
        """A line that stays (shown even with --quiet), written above the live block."""
        with self._lock:
            self._clear()
            self.stream.write(text + "\n")
            self._redraw()
            self.stream.flush()

    # reading the logs
    def poll(self) -> None:
        """Read what each watched log gained since the last poll; keep each cell's last status line."""
        now = time.monotonic()
        with self._lock:
            for cell in self._cells.values():
                try:
                    with open(cell.log, "rb") as f:
                        f.seek(cell.offset)
                        chunk = f.read()
                except OSError:
                    continue
                cell.offset += len(chunk)
                lines = (cell.partial + chunk.decode("utf-8", errors="replace")).split("\n")
                cell.partial = lines.pop()
                for line in lines:
                    parsed = parse_line(line.replace("\r", ""))
                    if parsed is not None:
                        cell.last, cell.last_seen = parsed, now

    def status_lines(self) -> list[str]:
        now = time.monotonic()
        with self._lock:
            width = max((len(label) for label in self._cells), default=0)
            return [
                f"  {label:<{width}} [{format_duration(now - c.started)}] {describe(c.last, now - c.last_seen)}"
                for label, c in self._cells.items()
            ]

    # drawing
    def _clear(self) -> None:
        if self.mode == "bar" and self._drawn:
            self.stream.write(f"\x1b[{self._drawn}F\x1b[J")  # up to the block's first line, erase below
            self._drawn = 0

    def _redraw(self) -> None:
        if self.mode != "bar":
            return
        self._clear()
        columns = shutil.get_terminal_size((100, 20)).columns - 1  # a wrapped line would break the cursor maths
        lines = self.status_lines()
        for line in lines:
            self.stream.write((line if len(line) <= columns else line[: columns - 1] + "…") + "\n")
        self._drawn = len(lines)
        self.stream.flush()

    def _plain(self, force: bool = False) -> None:
        """Print the lines that changed since last printed (interval elapsed, or forced)."""
        now = time.monotonic()
        if not force and now - self._last_plain < self.interval:
            return
        self._last_plain = now
        with self._lock:
            for label, cell in self._cells.items():
                text = describe(cell.last, now - cell.last_seen)
                if text != cell.printed:
                    cell.printed = text
                    self.stream.write(f"[{time.strftime('%H:%M:%S')}] {label}: {text}\n")
            self.stream.flush()

    def tick(self) -> None:
        """One poll and one refresh of the display, as the thread does every `poll_every` seconds."""
        if self.mode == "off":
            return
        self.poll()
        with self._lock:
            if self.mode == "bar":
                self._redraw()
            else:
                self._plain()

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_every):
            self.tick()

    def __enter__(self) -> CellBoard:
        if self.mode != "off":
            self._thread = threading.Thread(target=self._loop, name="cell-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            self._cells.clear()
            self._clear()
            self.stream.flush()


class CaseProgress:
    """A status line for a sequence of cases that each take a while (`d2m bench`): which case runs,
    how long the finished ones took on average, and an estimate of the time left."""

    def __init__(self, total: int, stream: TextIO | None = None, mode: str | None = None):
        self.total = total
        self.stream = stream or sys.stderr
        self.mode = mode or console_mode()
        self.done = 0
        self._t0 = time.monotonic()

    def line(self, label: str) -> str:
        elapsed = time.monotonic() - self._t0
        text = f"[{time.strftime('%H:%M:%S')}] bench: case {self.done + 1}/{self.total} {label}"
        if self.done:
            per = elapsed / self.done
            text += f", {format_duration(per)} per case, {format_duration(per * (self.total - self.done))} left"
        return text

    def start(self, label: str) -> None:
        if self.mode != "off":
            self.stream.write(self.line(label) + "\n")
            self.stream.flush()

    def finish(self) -> None:
        self.done += 1
