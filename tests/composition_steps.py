"""Test helper: run composition training steps through a real Trainer and record what each step did.

The GAN step exists only inside a Trainer (manual optimisation with toggled optimisers), so tests
watch it from a callback: before each optimiser step, which networks hold a gradient and a copy of
every network's weights; after the batch, the weights again. Consecutive copies differ by exactly
one optimiser step's update.
"""

from __future__ import annotations

import warnings

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset


class Sequences(Dataset):
    """The same fixed batch, item by item, so a fit of one batch sees exactly `batch`."""

    def __init__(self, batch: dict[str, torch.Tensor]):
        self.batch = batch

    def __len__(self):
        return int(self.batch["poses"].shape[0])

    def __getitem__(self, i):
        return {k: v[i] for k, v in self.batch.items()}


class StepRecorder(pl.Callback):
    def __init__(self, names):
        self.names = tuple(names)
        self.snapshots: list[dict[str, list[torch.Tensor]]] = []
        self.with_grad: list[set[str]] = []
        self.optimisers: list[int] = []

    def _snapshot(self, module):
        return {n: [p.detach().clone() for p in getattr(module.model, n).parameters()] for n in self.names
                if hasattr(module.model, n)}

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.with_grad.append({n for n in self.names if hasattr(pl_module.model, n)
                               and any(p.grad is not None for p in getattr(pl_module.model, n).parameters())})
        self.optimisers.append(id(getattr(optimizer, "optimizer", optimizer)))
        self.snapshots.append(self._snapshot(pl_module))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.snapshots.append(self._snapshot(pl_module))

    def moved(self) -> list[set[str]]:
        """Per optimiser step, the networks whose weights it changed."""
        out = []
        for before, after in zip(self.snapshots, self.snapshots[1:]):
            out.append({n for n in before if any(not torch.equal(a, b) for a, b in zip(before[n], after[n]))})
        return out


def fit_steps(module, batch: dict[str, torch.Tensor], batches: int = 1, callbacks=(), **trainer_kw) -> pl.Trainer:
    """`batches` training batches of `batch` through a CPU Trainer (max_steps counts optimiser steps)."""
    trainer = pl.Trainer(max_steps=batches * module.optimizer_steps_per_batch, max_epochs=batches,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
                         callbacks=list(callbacks), **{"accelerator": "cpu", "devices": 1, **trainer_kw})
    loader = DataLoader(Sequences(batch), batch_size=int(batch["poses"].shape[0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, train_dataloaders=loader)
    return trainer
