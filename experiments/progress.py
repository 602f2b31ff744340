"""Training progress on the console: Lightning's bar in a terminal, plain lines anywhere else.

A process that owns a terminal shows Lightning's own progress bar. In a log file or a pipe (a
matrix cell, `d2m run ... | tee`), carriage returns would make a mess, so a callback prints a plain
line every few seconds instead:

    [08:46:07] composition: step 120/800, 3.2 steps/s, 3m32s left

These lines share the `[HH:MM:SS] stage: text` shape of the stage events (`composition: start`),
and `ablations.progress` reads both back from each cell's log to draw the live status of parallel
cells; `format_progress` and `parse_line` keep that format in one place.

This module is light (no torch, no Lightning) so that the command line can use it before anything
heavy loads; the callback itself is in `experiments.progress_callback`.

`D2M_PROGRESS` chooses the mode (`bar`, `lines` or `off`; unset: `bar` when stderr is a terminal,
else `lines`), `D2M_PROGRESS_EVERY` the seconds between plain lines (default 30).
"""

from __future__ import annotations

import math
import os
import re
import sys
import time
from typing import Any

ENV_MODE = "D2M_PROGRESS"
ENV_EVERY = "D2M_PROGRESS_EVERY"
MODES = ("bar", "lines", "off")
DEFAULT_EVERY = 30.0

_LINE = re.compile(r"^\[(\d\d:\d\d:\d\d)\] ([\w-]+): (.*)$")
_STEP = re.compile(r"^step (\d+)/(\d+)(?:, ([\d.]+) steps/s, (\S+) left)?$")


def console_mode() -> str:
    """`bar`, `lines` or `off`, from D2M_PROGRESS or from whether stderr is a terminal."""
    mode = os.environ.get(ENV_MODE, "").strip().lower()
    if mode in MODES:
        return mode
    return "bar" if sys.stderr.isatty() else "lines"


def line_interval() -> float:
    """Seconds between plain progress lines (D2M_PROGRESS_EVERY, default 30)."""
    try:
        return max(0.0, float(os.environ.get(ENV_EVERY, DEFAULT_EVERY)))
    except ValueError:
        return DEFAULT_EVERY


def format_duration(seconds: float) -> str:
    """42s, 3m32s, 1h05m: short enough for a status line."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def format_rate(rate: float) -> str:
    return f"{rate:.2f}" if rate < 10 else f"{rate:.0f}"


def format_progress(stage: str, step: int, total: int, rate: float, clock: float | None = None) -> str:
    """One progress line; without a rate yet (rate <= 0) only the step is given."""
    stamp = time.strftime("%H:%M:%S", time.localtime(clock))
    text = f"step {step}/{total}"
    if rate > 0:
        text += f", {format_rate(rate)} steps/s, {format_duration(max(0, total - step) / rate)} left"
    return f"[{stamp}] {stage}: {text}"


def parse_line(line: str) -> dict[str, Any] | None:
    """A stage event or progress line as a dict (time, stage, text; step, total, rate, eta when given)."""
    m = _LINE.match(line.strip())
    if not m:
        return None
    out: dict[str, Any] = {"time": m.group(1), "stage": m.group(2), "text": m.group(3)}
    step = _STEP.match(m.group(3))
    if step:
        out.update(step=int(step.group(1)), total=int(step.group(2)))
        if step.group(3):
            out.update(rate=float(step.group(3)), eta=step.group(4))
    return out
