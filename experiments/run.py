"""Run one experiment: its stages in order, then the run directory that ties their results together.

The run directory is named deterministically from the config, so rerunning the same command finds
it again: finished stages are skipped and an interrupted stage resumes. Its done.json says how far
the run went (`stages`, `evaluated`); a later command that asks for less (`d2m train style` after
`d2m run`) keeps the stages already done, so a run never goes backwards.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from common.atomic import write_json, write_text
from experiments.config import to_yaml
from experiments.rundir import mark_done, run_dir, run_progress
from experiments.stage_graph import STAGES, stages_until
from experiments.stages import is_rank_zero, run_stage

NOT_ROWS = ("metrics", "timings", "report")


def _flat(values: dict[str, Any], prefix: str) -> dict[str, float]:
    """Numbers of a (nested) mapping as flat `prefix/key/...` metrics."""
    out: dict[str, float] = {}
    for k, v in values.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}/"))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[f"{prefix}{k}"] = v
    return out


def _print_event(stage: str, event: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {stage}: {event}", file=sys.stderr, flush=True)


def run_experiment(cfg: DictConfig, until: str = "evaluation", on_event=_print_event) -> Path:
    """Run the stages needed for `until` (and keep those done before); return the run directory."""
    folder = run_dir(cfg)
    before = run_progress(folder)
    if is_rank_zero():
        folder.mkdir(parents=True, exist_ok=True)
        write_text(folder / "config.yaml", to_yaml(cfg))  # written first: a crashed run still says what it was
    wanted = set(stages_until(until)) | set(before)
    records: dict[str, dict[str, Any]] = {}
    for stage in (s for s in STAGES if s in wanted):
        records[stage] = run_stage(cfg, stage, records, on_event)
    if not is_rank_zero():
        return folder
    stages = {s: {k: r.get(k) for k in ("key", "dir", "checkpoint", "root") if r.get(k)} for s, r in records.items()}
    metrics: dict[str, float] = {}
    timings: dict[str, Any] = {}
    for s, r in records.items():
        metrics.update({f"{s}/{k}": v for k, v in (r.get("metrics") or {}).items()})
        if s == "evaluation":  # the reference row and any other row the evaluation scores (controls)
            for row, values in r.items():
                if row not in NOT_ROWS and isinstance(values, dict):
                    metrics.update(_flat(values, f"{row}/"))
        if r.get("timings"):
            timings[s] = r["timings"]
    write_json(folder / "stages.json", stages)
    write_json(folder / "metrics.json", metrics)
    write_json(folder / "timings.json", timings)
    evaluated = "evaluation" in records
    if evaluated and "evaluation" not in before:
        from experiments.loggers import log_evaluation_run

        log_evaluation_run(cfg, folder, metrics)
    mark_done(folder, {"until": list(records)[-1], "stages": list(records), "evaluated": evaluated})
    return folder

