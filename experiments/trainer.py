"""Build the Lightning Trainer of a stage from the trainer block and the stage's optimiser block.

Faults leave a resumable state:
- Checkpoints are written atomically (`AtomicCheckpointIO`: serialised in memory, written to a
  temporary file, flushed, renamed), so a full disk or a kill mid-write keeps the previous
  checkpoint; a failed write is one D2MError naming the file.
- A resume that meets an unreadable checkpoint (truncated or damaged on disk) falls back to the
  newest readable checkpoint of the same folder, or starts the stage afresh, and says so.
- Ctrl-C and SIGTERM during `fit`/`test` reach the caller as KeyboardInterrupt / `Terminated`
  (Lightning itself would turn Ctrl-C into `sys.exit(1)` and SIGTERM into a plain exit), so the
  command line can print its one line and exit 130 / 143; the rerun resumes from the last checkpoint.
"""

from __future__ import annotations

import contextlib
import io
import logging
import signal
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from omegaconf import DictConfig
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from pytorch_lightning.loggers import Logger
from pytorch_lightning.utilities.exceptions import SIGTERMException
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from common.atomic import WriteError, write_bytes
from common.errors import D2MError, Terminated
from experiments.averaging import averaging_callbacks
from experiments.progress_callback import progress_setup
from experiments.timing import StepTimer


class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save into memory, then an atomic write: a checkpoint file is complete or absent."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        try:
            write_bytes(path, buffer.getvalue())
        except WriteError as err:
            raise D2MError(f"cannot write checkpoint {path}: {err.reason}; the previous checkpoint is kept, "
                           "rerun the same command to resume from it") from None


def checkpoint_problem(path: str | Path) -> str | None:
    """Why a checkpoint file cannot be loaded (truncated, damaged), or None when it reads whole.

    Reads the zip container torch.save writes and checks every member's CRC; nothing is unpickled.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            if bad is not None:
                return f"damaged member {bad}"
            if not any(name.endswith("data.pkl") for name in archive.namelist()):
                return "not a torch checkpoint (no data.pkl)"
    except (OSError, EOFError, zipfile.BadZipFile, ValueError) as err:
        return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
    return None


def resumable_checkpoint(path: str | Path, say=None) -> str | None:
    """`path` if it reads whole; else the newest readable .ckpt beside it, or None (start afresh).

    Nothing is deleted: the unreadable file stays until training overwrites it with a good one.
    """
    say = say or _say
    path = Path(path)
    problem = checkpoint_problem(path)
    if problem is None:
        return str(path)
    others = sorted((p for p in path.parent.glob("*.ckpt") if p != path), key=lambda p: p.stat().st_mtime,
                    reverse=True)
    good = next((p for p in others if checkpoint_problem(p) is None), None)
    then = f"resuming from {good.name} instead" if good else "no readable checkpoint left: this stage starts afresh"
    say(f"warning: checkpoint {path} is unreadable ({problem}); {then}")
    return str(good) if good else None


def _say(line: str) -> None:
    if getattr(rank_zero_only, "rank", 0) == 0:
        print(f"d2m: {line}", file=sys.stderr, flush=True)


class _RememberException(pl.Callback):
    """Keeps the exception Lightning saw, since Lightning replaces a KeyboardInterrupt by sys.exit(1)."""

    def __init__(self) -> None:
        self.exception: BaseException | None = None

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self.exception = exception


class _DropInterruptNotice(logging.Filter):
    """Lightning's own Ctrl-C notice; the command line prints d2m's one line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Detected KeyboardInterrupt" not in record.getMessage()


logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_DropInterruptNotice())


class D2MTrainer(pl.Trainer):
    """A Trainer whose fit/test resume safely and let interrupts reach the caller (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._seen = _RememberException()
        kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), self._seen]
        kwargs.setdefault("plugins", [AtomicCheckpointIO()])
        super().__init__(*args, **kwargs)

    @contextlib.contextmanager
    def _interrupts_pass_through(self) -> Iterator[None]:
        self._seen.exception = None
        sigint = signal.getsignal(signal.SIGINT)
        try:
            yield
        except SIGTERMException:
            raise Terminated() from None
        except SystemExit:
            if isinstance(self._seen.exception, KeyboardInterrupt):
                raise self._seen.exception from None
            raise
        finally:
            if sigint is not None:  # Lightning ignores Ctrl-C after the first one
                signal.signal(signal.SIGINT, sigint)

    def fit(self, model, train_dataloaders=None, val_dataloaders=None, datamodule=None, ckpt_path=None,
            weights_only=None) -> None:
        if ckpt_path is not None and Path(str(ckpt_path)).is_file():
            ckpt_path = resumable_checkpoint(ckpt_path)
        with self._interrupts_pass_through():
            return super().fit(model, train_dataloaders, val_dataloaders, datamodule, ckpt_path, weights_only)

    def test(self, *args: Any, **kwargs: Any):
        with self._interrupts_pass_through():
            return super().test(*args, **kwargs)


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


def strategy_for(name: str, module: pl.LightningModule | None):
    """The strategy to hand the Trainer: DDP variants get the `find_unused_parameters` the module declares.

    A model whose steps leave some parameters without a gradient (the GAN's players, an ablated
    cell) needs DDP to look for them; one that uses every parameter is faster without the search.
    """
    find_unused = getattr(module, "find_unused_parameters", None)
    starts = {"ddp": "popen", "ddp_spawn": "spawn", "ddp_fork": "fork", "ddp_notebook": "fork"}
    if find_unused is None or name not in starts:
        return name
    from pytorch_lightning.strategies import DDPStrategy

    return DDPStrategy(find_unused_parameters=bool(find_unused), start_method=starts[name])
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
    module: pl.LightningModule | None = None,
) -> tuple[pl.Trainer, ModelCheckpoint, StepTimer]:
    """The stage's Trainer. With `module`, its declared DDP needs and optimiser steps per batch are honoured.

    Lightning counts every optimiser step in `global_step`; a module that steps several optimisers
    per batch (`optimizer_steps_per_batch`) gets `max_steps` scaled by that number, so
    `optim.max_steps` always counts batches.
    """
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
    timer = StepTimer(batch_size=optim.batch_size)
    show_bar, progress_callbacks = progress_setup(stage_dir.name.rsplit("-", 1)[0], cfg.trainer.progress_bar)
    callbacks: list[pl.Callback] = [checkpoint, timer, *progress_callbacks,
                                    *averaging_callbacks(optim.get("ema_decay", 0.0))]
    if optim.early_stopping_patience > 0:
        callbacks.append(EarlyStopping(monitor=monitor, mode=monitor_mode, patience=optim.early_stopping_patience))
    trainer = D2MTrainer(
        accelerator=accelerator_of(cfg),
        devices=cfg.trainer.devices,
        num_nodes=cfg.trainer.num_nodes,
        strategy=strategy_for(cfg.trainer.strategy, module),
        precision=cfg.trainer.precision,
        deterministic=cfg.trainer.deterministic,
        max_epochs=optim.max_epochs,
        max_steps=optim.max_steps * int(getattr(module, "optimizer_steps_per_batch", 1)) if optim.max_steps > 0
        else optim.max_steps,
        **_validation_schedule(optim),
        gradient_clip_val=None if manual_optimization or optim.grad_clip <= 0 else optim.grad_clip,
        logger=loggers or False,
        callbacks=callbacks,
        log_every_n_steps=cfg.trainer.log_every_n_steps,
        enable_progress_bar=show_bar,
        enable_model_summary=False,
        default_root_dir=str(stage_dir),
        num_sanity_val_steps=0,
        **_overfit(cfg),
    )
    return trainer, checkpoint, timer
