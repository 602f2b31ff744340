"""Learning-rate schedules by name: a multiplier of the base rate at each optimiser step.

`constant` keeps the base rate (the paper's); `cosine` warms up linearly over `warmup_steps` and then
follows half a cosine down to `final_scale` of the base rate at `max_steps`. A short budget learns
more from a higher peak rate that is annealed at the end than from a fixed rate low enough to be
stable throughout.
"""

from __future__ import annotations

import math

import torch

from common.errors import D2MError

__all__ = ["SCHEDULES", "lr_scale", "scheduler_config"]

SCHEDULES = ("constant", "cosine")


def lr_scale(kind: str, step: int, max_steps: int, warmup_steps: int = 0, final_scale: float = 0.0) -> float:
    """The multiplier of the base learning rate at optimiser step `step` (0-based)."""
    if kind not in SCHEDULES:
        raise D2MError(f"optim.lr_schedule: unknown schedule '{kind}'; known: {', '.join(SCHEDULES)}")
    warm = 1.0 if warmup_steps <= 0 else min(1.0, (step + 1) / warmup_steps)
    if kind == "constant":
        return warm
    if max_steps <= 0:
        raise D2MError("optim.lr_schedule: cosine needs optim.max_steps > 0 (the step it ends at)")
    span = max(max_steps - max(warmup_steps, 0), 1)
    progress = min(max(step - max(warmup_steps, 0), 0) / span, 1.0)
    return warm * (final_scale + (1.0 - final_scale) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def scheduler_config(optimizer: torch.optim.Optimizer, optim) -> dict | None:
    """Lightning's per-step scheduler entry for an `OptimConfig`, or None for a plain constant rate."""
    kind = str(getattr(optim, "lr_schedule", "constant"))
    warmup = int(getattr(optim, "lr_warmup_steps", 0))
    if kind == "constant" and warmup <= 0:
        lr_scale(kind, 0, 0)  # validates the name
        return None
    final = float(getattr(optim, "lr_final_scale", 0.0))
    max_steps = int(optim.max_steps)
    lr_scale(kind, 0, max_steps, warmup, final)  # fails now, not at the first step
    lam = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_scale(kind, step, max_steps, warmup, final))
    return {"scheduler": lam, "interval": "step", "frequency": 1}
