"""Step timing during real training runs, for the timing tables.

Only the optimisation step is timed (batch start to batch end), so data loading and validation do
not blur the number; CUDA work is synchronised before each clock read so GPU steps are not
under-counted. The batch size reported is the configured one: the first timed batch can be a
partial one at the end of an epoch.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import pytorch_lightning as pl
import torch


class StepTimer(pl.Callback):
    def __init__(self, warmup_steps: int = 2, batch_size: int = 0):
        self.warmup_steps = warmup_steps
        self.times: list[float] = []
        self.batch_size = int(batch_size)  # 0: not configured, the largest batch seen is used
        self.fit_seconds = 0.0
        self.configured = self.batch_size > 0
        self._t0 = 0.0
        self._fit_t0 = 0.0

    @staticmethod
    def _sync(pl_module: pl.LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def on_fit_start(self, trainer, pl_module) -> None:
        self._fit_t0 = time.perf_counter()

    def on_fit_end(self, trainer, pl_module) -> None:
        self.fit_seconds = time.perf_counter() - self._fit_t0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._sync(pl_module)
        self._t0 = time.perf_counter()
        if not self.configured and isinstance(batch, dict) and batch:
            first = next(iter(batch.values()))
            self.batch_size = max(self.batch_size, int(first.shape[0]))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._sync(pl_module)
        self.times.append(time.perf_counter() - self._t0)

    def summary(self, device: str) -> dict[str, Any]:
        timed = self.times[self.warmup_steps :] or self.times
        ms = 1000.0 * statistics.median(timed) if timed else float("nan")
        return {
            "device": device,
            "steps": len(self.times),
            "batch_size": self.batch_size,
            "ms_per_step": ms,
            "samples_per_s": self.batch_size / (ms / 1000.0) if timed and ms > 0 else float("nan"),
            "fit_seconds": self.fit_seconds,
        }
