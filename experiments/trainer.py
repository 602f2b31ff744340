"""Build the Lightning Trainer of a stage from the trainer block and the stage's optimiser block."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from pytorch_lightning.loggers import Logger

from datamodules.errors import D2MError
from experiments.timing import StepTimer


def accelerator_of(cfg: DictConfig) -> str:
    """The accelerator to use, with a clear error when a GPU is asked for but absent."""
    acc = cfg.trainer.accelerator
    if acc in ("cuda", "gpu"):
        if not torch.cuda.is_available():
            raise D2MError(f"trainer.accelerator={acc} but no CUDA device is present (use trainer.accelerator=cpu)")
        return "gpu"
    if acc == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    return "cpu"


def device_name(cfg: DictConfig) -> str:
    return "cuda" if accelerator_of(cfg) == "gpu" else "cpu"


def _validation_schedule(optim: DictConfig) -> dict:
    """Step-budgeted stages validate every N steps (and at the last), so a best checkpoint always exists."""
    if optim.max_steps > 0:
        every = optim.val_every_n_steps if optim.val_every_n_steps > 0 else optim.max_steps
        return {"val_check_interval": min(every, optim.max_steps), "check_val_every_n_epoch": None}
    return {"check_val_every_n_epoch": optim.check_val_every_n_epoch}


def _overfit(cfg: DictConfig) -> dict:
    """Lightning's `overfit_batches` (a model that cannot memorise one batch is broken before capacity).

    An integer-valued setting counts batches (1.0 means one batch, not the whole set); 0 leaves it out.
    """
    n = float(cfg.trainer.get("overfit_batches", 0.0) or 0.0)
    if n <= 0:
        return {}
    return {"overfit_batches": int(n) if n >= 1 and n == int(n) else n}


def build_trainer(
    cfg: DictConfig,
    optim: DictConfig,
    stage_dir: Path,
    loggers: list[Logger],
    monitor: str,
    monitor_mode: str,
    manual_optimization: bool = False,
) -> tuple[pl.Trainer, ModelCheckpoint, StepTimer]:
    if cfg.trainer.threads > 0:
        torch.set_num_threads(cfg.trainer.threads)
    checkpoint = ModelCheckpoint(
        dirpath=str(stage_dir / "checkpoints"),
        filename="best",
        monitor=monitor,
        mode=monitor_mode,
        save_last=True,
        save_top_k=1,
    )
    timer = StepTimer()
    callbacks: list[pl.Callback] = [checkpoint, timer]
    if optim.early_stopping_patience > 0:
        callbacks.append(EarlyStopping(monitor=monitor, mode=monitor_mode, patience=optim.early_stopping_patience))
    trainer = pl.Trainer(
        accelerator=accelerator_of(cfg),
        devices=cfg.trainer.devices,
        num_nodes=cfg.trainer.num_nodes,
        strategy=cfg.trainer.strategy,
        precision=cfg.trainer.precision,
        deterministic=cfg.trainer.deterministic,
        max_epochs=optim.max_epochs,
        max_steps=optim.max_steps,
        **_validation_schedule(optim),
        gradient_clip_val=None if manual_optimization or optim.grad_clip <= 0 else optim.grad_clip,
        logger=loggers or False,
        callbacks=callbacks,
        log_every_n_steps=cfg.trainer.log_every_n_steps,
        enable_progress_bar=cfg.trainer.progress_bar,
        enable_model_summary=False,
        default_root_dir=str(stage_dir),
        num_sanity_val_steps=0,
        **_overfit(cfg),
    )
    return trainer, checkpoint, timer
