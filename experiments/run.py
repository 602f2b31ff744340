"""Run one experiment: its stages in order, then the run directory that ties their results together.

The run directory is named deterministically from the config, so rerunning the same command finds
it again: finished stages are skipped and an interrupted stage resumes.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from datamodules.atomic import read_json, write_json, write_text
from experiments.config import to_yaml
from experiments.rundir import mark_done, run_dir
from experiments.stages import is_rank_zero, run_stage, stages_until


def _print_event(stage: str, event: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {stage}: {event}", file=sys.stderr, flush=True)


def run_experiment(cfg: DictConfig, until: str = "evaluation", on_event=_print_event) -> Path:
    """Run the stages needed for `until`; return the run directory."""
    folder = run_dir(cfg)
    if is_rank_zero():
        folder.mkdir(parents=True, exist_ok=True)
        write_text(folder / "config.yaml", to_yaml(cfg))  # written first: a crashed run still says what it was
    records: dict[str, dict[str, Any]] = {}
    for stage in stages_until(until):
        records[stage] = run_stage(cfg, stage, records, on_event)
    if not is_rank_zero():
        return folder
    stages = {s: {k: r.get(k) for k in ("key", "dir", "checkpoint", "root") if r.get(k)} for s, r in records.items()}
    metrics: dict[str, float] = {}
    timings: dict[str, Any] = {}
    for s, r in records.items():
        metrics.update({f"{s}/{k}": v for k, v in (r.get("metrics") or {}).items()})
        metrics.update({f"reference/{k}": v for k, v in (r.get("reference") or {}).items()})
        if r.get("timings"):
            timings[s] = r["timings"]
    write_json(folder / "stages.json", stages)
    write_json(folder / "metrics.json", metrics)
    write_json(folder / "timings.json", timings)
    mark_done(folder, {"until": until})
    return folder


def run_metrics(folder: str | Path) -> dict[str, float]:
    return read_json(Path(folder) / "metrics.json", {})
