"""One factory for every stage's loggers: W&B (offline by default) and a local CSV logger.

W&B gets the whole resolved config at init (an offline run keeps it only if given then), its files
live inside the stage folder, and the run is finished in `finish_loggers`, which callers put in a
`finally` so that one failed stage never leaks into the next run of the same process. The CSV files
and our own metrics.json are the source of every table; W&B mirrors them for the dashboard.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from pytorch_lightning.loggers import CSVLogger, Logger, WandbLogger

from experiments.config import to_container


def switched_off_terms(cfg: DictConfig) -> list[str]:
    return [
        f"no-{name}"
        for model in ("decomposition", "composition")
        for name, term in cfg[model].losses.items()
        if not term.enabled
    ]


def run_tags(cfg: DictConfig) -> list[str]:
    """Tags that let the dashboard filter cells: switched-off terms, architecture, preset, device."""
    tags = switched_off_terms(cfg) + [f"style-{cfg.style.arch}", f"preset-{cfg.preset}", cfg.trainer.accelerator]
    return sorted(set(tags) | set(cfg.logging.tags))


def make_loggers(cfg: DictConfig, stage: str, stage_dir: Path, run_label: str) -> list[Logger]:
    loggers: list[Logger] = []
    if cfg.logging.csv:
        loggers.append(CSVLogger(save_dir=str(stage_dir), name="csv", version=""))
    if cfg.logging.wandb and cfg.logging.mode != "disabled":
        import wandb

        if wandb.run is not None:  # a run left open by a crashed stage must not swallow this one
            wandb.run.finish(exit_code=1)
        os.environ.setdefault("WANDB_SILENT", "true")
        os.environ.setdefault("WANDB_DISABLE_GIT", "true")
        kwargs: dict[str, Any] = {}
        if cfg.logging.entity:
            kwargs["entity"] = cfg.logging.entity
        wandb_logger = WandbLogger(
            project=cfg.logging.project,
            name=f"{run_label}/{stage}",
            group=cfg.group,
            job_type=stage,
            tags=run_tags(cfg),
            config=to_container(cfg),
            save_dir=str(stage_dir),
            mode=cfg.logging.mode,
            log_model=False,
            **kwargs,
        )
        # Lightning passes `anonymous=None` to wandb.init, and W&B warns that the setting is gone; leaving
        # it out changes nothing else (the run starts lazily, on first use, from these arguments).
        wandb_logger._wandb_init.pop("anonymous", None)
        loggers.append(wandb_logger)
    return loggers


def log_summary(loggers: list[Logger], summary: dict[str, Any]) -> None:
    """Final metrics and timings into each W&B run's summary (CSV gets them through metrics.json)."""
    for lg in loggers:
        if isinstance(lg, WandbLogger):
            lg.experiment.summary.update(summary)


def finish_loggers(loggers: list[Logger]) -> None:
    for lg in loggers:
        if isinstance(lg, WandbLogger) and lg._experiment is not None:
            lg.experiment.finish()
        else:
            lg.finalize("success")
