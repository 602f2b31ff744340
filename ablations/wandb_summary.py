"""A summary run per matrix in W&B: the ablation and timing tables as W&B tables, plots as images."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from omegaconf import DictConfig


def log_summary_run(cfg: DictConfig, group: str, table: pd.DataFrame, timing: pd.DataFrame, out: Path) -> None:
    if not cfg.logging.wandb or cfg.logging.mode == "disabled":
        return
    import wandb

    run = wandb.init(project=cfg.logging.project, group=group, job_type="summary", name=f"{group}/summary",
                     dir=str(out), mode=cfg.logging.mode, entity=cfg.logging.entity or None,
                     config={"matrix": group}, reinit="finish_previous")
    try:
        run.log({"ablation": wandb.Table(dataframe=table.fillna(float("nan")))})
        if not timing.empty:
            run.log({"timing": wandb.Table(dataframe=timing)})
        for png in sorted(out.glob("*.png")):
            run.log({f"plot/{png.stem}": wandb.Image(str(png))})
    finally:
        run.finish()
