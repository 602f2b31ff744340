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
from experiments.rundir import run_name


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


def wandb_enabled(cfg: DictConfig) -> bool:
    return bool(cfg.logging.wandb) and cfg.logging.mode != "disabled"


def _wandb_init_kwargs(cfg: DictConfig, job_type: str, run_label: str) -> dict[str, Any]:
    """What every W&B run of an experiment shares: project, group, tags, the whole config."""
    import wandb

    if wandb.run is not None:  # a run left open by a crashed stage must not swallow this one
        wandb.run.finish(exit_code=1)
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_DISABLE_GIT", "true")
    kwargs: dict[str, Any] = {"entity": cfg.logging.entity} if cfg.logging.entity else {}
    return {"project": cfg.logging.project, "name": f"{run_label}/{job_type}", "group": cfg.group,
            "job_type": job_type, "tags": run_tags(cfg), "config": to_container(cfg), "mode": cfg.logging.mode,
            **kwargs}


def make_loggers(cfg: DictConfig, stage: str, stage_dir: Path, run_label: str) -> list[Logger]:
    loggers: list[Logger] = []
    if cfg.logging.csv:
        loggers.append(CSVLogger(save_dir=str(stage_dir), name="csv", version=""))
    if wandb_enabled(cfg):
        wandb_logger = WandbLogger(save_dir=str(stage_dir), log_model=False,
                                   **_wandb_init_kwargs(cfg, stage, run_label))
        # Lightning passes `anonymous=None` to wandb.init, and W&B warns that the setting is gone; leaving
        # it out changes nothing else (the run starts lazily, on first use, from these arguments).
        wandb_logger._wandb_init.pop("anonymous", None)
        loggers.append(wandb_logger)
    return loggers


def log_evaluation_run(cfg: DictConfig, run_dir: Path, metrics: dict[str, Any]) -> None:
    """One `evaluation` W&B run per experiment, its summary = the run's metrics.json.

    Evaluation, reference and control rows, and each stage's test scores, sit in the summary of a
    run with the experiment's group and tags, so the dashboard's runs table sorts and groups cells
    by the numbers the study is about. Its files live in the run directory's wandb/.
    """
    if not wandb_enabled(cfg):
        return
    import wandb

    run = wandb.init(dir=str(run_dir), reinit="finish_previous",
                     **_wandb_init_kwargs(cfg, "evaluation", run_name(cfg)))
    try:
        run.summary.update({k: v for k, v in metrics.items() if isinstance(v, (int, float))})
    finally:
        run.finish()


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
