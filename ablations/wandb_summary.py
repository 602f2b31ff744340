"""A summary run per matrix in W&B: the ablation and timing tables as W&B tables, plots as images.

A separate step after the tables are written: it reads the CSV and PNG files `rebuild_tables` wrote,
so what W&B shows is what results/<matrix>/ holds, and the tables never depend on W&B.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from omegaconf import DictConfig


def log_summary_run(cfg: DictConfig, group: str, table_name: str, out: Path) -> None:
    if not cfg.logging.wandb or cfg.logging.mode == "disabled" or not (out / f"{table_name}.csv").is_file():
        return
    import wandb

    table = pd.read_csv(out / f"{table_name}.csv")
    run = wandb.init(project=cfg.logging.project, group=group, job_type="summary", name=f"{group}/summary",
                     dir=str(out), mode=cfg.logging.mode, entity=cfg.logging.entity or None,
                     config={"matrix": group}, reinit="finish_previous")
    try:
        run.log({table_name: wandb.Table(dataframe=table)})
        if (out / "timing.csv").is_file():
            run.log({"timing": wandb.Table(dataframe=pd.read_csv(out / "timing.csv"))})
        for png in sorted(out.glob("*.png")):
            run.log({f"plot/{png.stem}": wandb.Image(str(png))})
    finally:
        run.finish()
