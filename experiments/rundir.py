"""Run directories and stage keys: where each result lives and whether it is already done.

A stage's key hashes its own config and its upstream stages' keys (DESIGN.md section 5), so two
experiments that share a style extractor or a decomposition VAE find the same stage folder and train
it once. Layout under `<runs_dir>/<group>/`:

    stages/<stage>-<key>/      one trained stage: config.yaml, checkpoints/, metrics.json,
                               timings.json, csv/, wandb/, and done.json (written last)
    <run name>/                one experiment: config.yaml, stages.json, metrics.json, timings.json,
                               done.json
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from datamodules.atomic import read_json, write_json
from datamodules.errors import D2MError
from experiments.config import config_hash, to_container

STAGES = ("data", "style", "decomposition", "composition", "evaluation")
UPSTREAM: dict[str, tuple[str, ...]] = {
    "data": (),
    "style": ("data",),
    "decomposition": ("data",),
    "composition": ("data", "style", "decomposition"),
    "evaluation": ("composition",),
}
TRAINER_KEYS = ("accelerator", "devices", "num_nodes", "strategy", "precision", "deterministic", "compile")
DATA_BUILD_KEYS = ("source", "root", "synth", "features")
DATA_TRAIN_KEYS = ("styles", "unit_mode", "unit_frames", "unit_stride", "sequence_units", "jitter_x", "jitter_y")
DONE = "done.json"


def stage_section(cfg: DictConfig, stage: str) -> dict[str, Any]:
    """The part of the config a stage's result depends on (its own block, seed, device settings)."""
    data = to_container(cfg.data)
    trainer = {k: cfg.trainer[k] for k in TRAINER_KEYS}
    if stage == "data":
        return {k: data[k] for k in DATA_BUILD_KEYS}
    if stage == "style":  # the music classifier always sees every style of the dataset
        train = {k: data[k] for k in DATA_TRAIN_KEYS if k != "styles"}
        return {"style": to_container(cfg.style), "data": train, "seed": cfg.seed, "trainer": trainer}
    if stage in ("decomposition", "composition"):
        train = {k: data[k] for k in DATA_TRAIN_KEYS}
        return {stage: to_container(cfg[stage]), "data": train, "seed": cfg.seed, "trainer": trainer}
    if stage == "evaluation":
        return {"evaluation": to_container(cfg.evaluation), "seed": cfg.seed}
    raise KeyError(f"unknown stage '{stage}'; stages: {', '.join(STAGES)}")


def stage_key(cfg: DictConfig, stage: str) -> str:
    upstream = {up: stage_key(cfg, up) for up in UPSTREAM[stage]}
    return config_hash({"stage": stage, "own": stage_section(cfg, stage), "upstream": upstream})


def group_dir(cfg: DictConfig) -> Path:
    return Path(cfg.runs_dir) / cfg.group


def stage_dir(cfg: DictConfig, stage: str) -> Path:
    return group_dir(cfg) / "stages" / f"{stage}-{stage_key(cfg, stage)}"


def run_name(cfg: DictConfig) -> str:
    """Deterministic: the experiment's name, its seed and a hash of everything that shapes results."""
    shaped = to_container(cfg)
    for volatile in ("logging", "runs_dir", "group", "name"):
        shaped.pop(volatile, None)
    shaped["trainer"] = {k: cfg.trainer[k] for k in TRAINER_KEYS}
    return f"{cfg.name}-s{cfg.seed}-{config_hash(shaped, 8)}"


def run_dir(cfg: DictConfig) -> Path:
    return group_dir(cfg) / run_name(cfg)


def is_done(path: str | Path) -> bool:
    return (Path(path) / DONE).is_file()


def mark_done(path: str | Path, info: dict[str, Any] | None = None) -> None:
    """Written last: a folder without it is unfinished and will be redone or resumed."""
    write_json(Path(path) / DONE, info or {})


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
