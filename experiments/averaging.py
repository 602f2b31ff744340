"""An exponential moving average of the weights, as a Lightning callback (`optim.ema_decay`).

Lightning's `WeightAveraging` keeps an averaged copy of the module, updated after every optimiser
step, swaps it in for validation and writes it to the checkpoint's `state_dict` (the raw weights go
to `current_model_state`, so a resumed fit continues both). Checkpoint selection, the test and the
later stages therefore all see the averaged weights.

One change: the averaged model is restored from a checkpoint only while fitting. After `fit`, the
stage's `trainer.test(ckpt_path=best)` would otherwise reload the raw weights from
`current_model_state` and test the model that was not averaged.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import WeightAveraging
from pytorch_lightning.trainer.states import TrainerFn
from torch.optim.swa_utils import get_ema_multi_avg_fn

from common.errors import D2MError


class EMAWeights(WeightAveraging):
    """Weights averaged as ema = decay * ema + (1 - decay) * w after each optimiser step.

    The average starts from the weights after the first step (torch's `AveragedModel`).
    """

    def __init__(self, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise D2MError(f"optim.ema_decay: must be 0 (off) or between 0 and 1, got {decay}")
        super().__init__(multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
        self.decay = decay

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)


def averaging_callbacks(decay: float) -> list[pl.Callback]:
    """The callbacks `optim.ema_decay` asks for: none at 0, else one EMAWeights."""
    if decay == 0:
        return []
    return [EMAWeights(float(decay))]
