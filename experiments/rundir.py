"""Run directories: where each result lives and how far a run went.

Stage keys come from the stage graph (experiments/stage_graph.py), so two experiments that share a
style extractor or a decomposition VAE find the same stage folder and train it once. Layout under
`<runs_dir>/<group>/`:

    stages/<stage>-<key>/      one trained stage: stage.yaml (exactly what its key hashes),
                               checkpoints/, metrics.json, timings.json, csv/, wandb/, and
                               done.json (written last)
    <run name>/                one experiment: config.yaml, stages.json, metrics.json, timings.json,
                               wandb/ (its evaluation run), done.json (how far it went)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from common.atomic import read_json, write_json
from common.errors import D2MError
from experiments.config import config_hash, to_container
from experiments.stage_graph import STAGES, TRAINER_READS, stage_key, stages_until

__all__ = ["STAGES", "RunInfo", "group_dir", "is_done", "load_run", "mark_done", "run_dir", "run_name",
           "run_progress", "run_reached", "stage_dir", "stage_key"]
DONE = "done.json"
VOLATILE = ("logging", "runs_dir", "group", "name")  # where and how a run is logged, not what it computes


def group_dir(cfg: DictConfig) -> Path:
    return Path(cfg.runs_dir) / cfg.group


def stage_dir(cfg: DictConfig, stage: str) -> Path:
    return group_dir(cfg) / "stages" / f"{stage}-{stage_key(cfg, stage)}"


def run_name(cfg: DictConfig) -> str:
    """Deterministic: the experiment's name, its seed and a hash of everything that shapes results."""
    shaped = to_container(cfg)
    for volatile in VOLATILE:
        shaped.pop(volatile, None)
    shaped["trainer"] = {k.split(".", 1)[1]: OmegaConf.select(cfg, k) for k in TRAINER_READS}
    return f"{cfg.name}-s{cfg.seed}-{config_hash(shaped, 8)}"


def run_dir(cfg: DictConfig) -> Path:
    return group_dir(cfg) / run_name(cfg)


def is_done(path: str | Path) -> bool:
    return (Path(path) / DONE).is_file()


def mark_done(path: str | Path, info: dict[str, Any] | None = None) -> None:
    """Written last: a folder without it is unfinished and will be redone or resumed."""
    write_json(Path(path) / DONE, info or {})


def run_progress(path: str | Path) -> list[str]:
    """The stages a run directory has finished, in run order ([] when it has no done.json).

    done.json lists them under `stages`; an imported run (no such list) has what its stages.json
    names, and an older done.json with only `until` has every stage up to it.
    """
    path = Path(path)
    info = read_json(path / DONE)
    if info is None:
        return []
    if isinstance(info.get("stages"), list):
        done = set(info["stages"])
    elif info.get("until"):
        done = set(stages_until(str(info["until"])))
    else:
        done = set(read_json(path / "stages.json", {}) or {})
    if info.get("evaluated"):
        done.add("evaluation")
    return [s for s in STAGES if s in done]


def run_reached(path: str | Path, until: str) -> bool:
    """Whether a run directory finished `until` (a run finishes a stage after every stage it needs)."""
    return until in run_progress(path)


@dataclass
class RunInfo:
    """What a finished (or imported) run directory holds, for evaluation and generation."""

    path: Path
    config: DictConfig
    stages: dict[str, dict[str, Any]]  # stage -> {"key", "dir", "checkpoint", ...}

    def checkpoint(self, stage: str) -> Path:
        entry = self.stages.get(stage)
        if not entry or not entry.get("checkpoint"):
            raise D2MError(f"run {self.path} has no {stage} checkpoint (stages.json lists: "
                           f"{', '.join(sorted(self.stages)) or 'nothing'})")
        ckpt = Path(entry["checkpoint"])
        if not ckpt.is_absolute():
            ckpt = self.path / ckpt
        if not ckpt.is_file():
            raise D2MError(f"missing checkpoint for stage {stage}: {ckpt}")
        return ckpt


def load_run(path: str | Path) -> RunInfo:
    path = Path(path)
    if not path.is_dir():
        raise D2MError(f"run directory not found: {path}")
    cfg_file = path / "config.yaml"
    stages_file = path / "stages.json"
    if not cfg_file.is_file() or not stages_file.is_file():
        raise D2MError(f"{path} is not a d2m-lab run directory (needs config.yaml and stages.json)")
    cfg = OmegaConf.load(cfg_file)
    return RunInfo(path=path, config=cfg, stages=read_json(stages_file, {}))
