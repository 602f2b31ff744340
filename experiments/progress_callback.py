"""The training side of console progress: plain progress lines from a Lightning callback, or
Lightning's own bar, chosen by `experiments.progress.console_mode`."""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO

import pytorch_lightning as pl
from pytorch_lightning.callbacks import TQDMProgressBar

from experiments.progress import console_mode, format_progress, line_interval


class ProgressLines(pl.Callback):
    """Prints a progress line at the start, every `every` seconds of training, and at the end.

    The step is Lightning's global step and the total its estimated number of steps, the same
    numbers `max_steps` is checked against; the rate is averaged since this fit started (a resumed
    fit starts counting at its checkpoint), so validation time is included and the time left is honest.
    """

    def __init__(self, stage: str, every: float | None = None, stream: TextIO | None = None):
        self.stage = stage
        self.every = line_interval() if every is None else every
        self.stream = stream
        self._t0 = 0.0
        self._step0 = 0
        self._last = -math.inf

    def _emit(self, trainer: pl.Trainer) -> None:
        if not trainer.is_global_zero:
            return
        now = time.monotonic()
        self._last = now
        step = int(trainer.global_step)
        total = trainer.estimated_stepping_batches
        total = int(total) if math.isfinite(total) else step
        elapsed = now - self._t0
        rate = (step - self._step0) / elapsed if elapsed > 0 and step > self._step0 else 0.0
        print(format_progress(self.stage, step, max(total, step), rate), file=self.stream or sys.stderr, flush=True)

    def on_train_start(self, trainer, pl_module) -> None:
        self._t0 = time.monotonic()
        self._step0 = int(trainer.global_step)
        self._emit(trainer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if time.monotonic() - self._last >= self.every:
            self._emit(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        self._emit(trainer)


class StageBar(TQDMProgressBar):
    """Lightning's bar over the whole stage (global step of all its steps) instead of one epoch at a
    time, so its rate and time left are the stage's; the epoch is in the description."""

    def __init__(self, stage: str):
        super().__init__()
        self.stage = stage

    def on_train_start(self, trainer, pl_module) -> None:
        super().on_train_start(trainer, pl_module)
        total = trainer.estimated_stepping_batches
        bar = self.train_progress_bar
        bar.reset(total=int(total) if math.isfinite(total) else None)
        bar.initial = bar.n = int(trainer.global_step)  # a resumed fit counts its rate from here
        bar.set_description(self.stage)

    def on_train_epoch_start(self, trainer, *_) -> None:
        self.train_progress_bar.set_description(f"{self.stage} (epoch {trainer.current_epoch})")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        bar = self.train_progress_bar
        if self.is_enabled and batch_idx % self.refresh_rate == 0:
            bar.n = int(trainer.global_step)
            bar.set_postfix(self.get_metrics(trainer, pl_module), refresh=False)
            bar.refresh()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module))


def progress_setup(stage: str, want_bar: bool = False) -> tuple[bool, list[pl.Callback]]:
    """(show Lightning's bar?, extra callbacks) for one stage's Trainer, by console mode.

    `want_bar` is the config's `trainer.progress_bar`: it asks for the bar even where the plain
    lines would be chosen; `off` (`--quiet`) wins over it.
    """
    mode = console_mode()
    if mode == "off":
        return False, []
    if mode == "bar" or want_bar:
        return True, [StageBar(stage)]
    return False, [ProgressLines(stage)]
