"""The stage graph and stage keys: which stages need which, and which config leaves each one reads.

A stage's key hashes exactly the config leaves that stage reads and the keys of the stages it needs
(DESIGN.md section 5). What a stage reads is declared where it is read: each DataModule and
LightningModule class a stage builds lists its leaves in `CONFIG_READS` (dotted prefixes of the
experiment config: `"style"` is the whole style block, `"data.window_stride"` one leaf), and the
stage adds what it reads itself (the seed, the trainer settings that change numbers). A leaf that no
stage reads (logging, the run's name, thread counts) is in no key, so changing it never retrains;
nor does a loss term that is switched off (it is never built) or a training-unit augmentation at 0,
so adding a term or an augmentation to the schema switched off keeps every stage trained before it.

The same graph orders the stages of a run (`stages_until`) and builds the keys, so the two cannot
disagree. `stage_spec` is what a key hashes and what a stage folder's `stage.yaml` holds.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from typing import Any

from omegaconf import DictConfig, OmegaConf

from common.errors import D2MError
from datamodules.config import AUGMENTATIONS
from experiments.config import config_hash, to_container

# Trainer settings that change the numbers a stage produces (threads, logging cadence and the
# progress bar do not, and are in no key).
TRAINER_READS = tuple(f"trainer.{k}" for k in ("accelerator", "devices", "num_nodes", "strategy", "precision",
                                                "deterministic", "overfit_batches"))


@dataclass(frozen=True)
class Stage:
    """One node of the graph: the stages it needs, its own reads, the classes it builds (module:Class),
    and the version numbers of the code whose results it stores (module:NAME, an int)."""

    needs: tuple[str, ...]
    reads: tuple[str, ...] = ()
    builds: tuple[str, ...] = ()
    versions: tuple[str, ...] = ()


# In run order: every stage comes after the stages it needs.
GRAPH: dict[str, Stage] = {
    "data": Stage((), ("data.root", "data.source", "data.synth", "data.features")),
    "style": Stage(("data",), ("seed", *TRAINER_READS),
                   ("datamodules.lightning_data:StyleWindowDataModule",
                    "lightning_modules.style_module:StyleExtractorModule")),
    "decomposition": Stage(("data",), ("seed", *TRAINER_READS),
                           ("datamodules.lightning_data:UnitDataModule",
                            "lightning_modules.decomposition_module:DecompositionModule")),
    "composition": Stage(("data", "style", "decomposition"), ("seed", *TRAINER_READS),
                         ("datamodules.lightning_data:SequenceDataModule",
                          "lightning_modules.composition_module:CompositionModule")),
    "evaluation": Stage(("data", "composition"), ("seed", "evaluation"),
                        versions=("evaluation.evaluate:METRICS_VERSION",)),
}
STAGES = tuple(GRAPH)


def _stage(name: str) -> Stage:
    if name not in GRAPH:
        raise D2MError(f"unknown stage '{name}'; stages: {', '.join(STAGES)}")
    return GRAPH[name]


def _declared(path: str) -> tuple[str, ...]:
    module, _, cls = path.partition(":")
    reads = getattr(getattr(importlib.import_module(module), cls), "CONFIG_READS", None)
    if not isinstance(reads, tuple) or not all(isinstance(r, str) for r in reads):
        raise D2MError(f"{path} must declare CONFIG_READS, a tuple of dotted config keys it reads")
    return reads


@cache
def stage_reads(name: str) -> tuple[str, ...]:
    """The config prefixes a stage reads, sorted, with prefixes inside another one dropped."""
    stage = _stage(name)
    reads = set(stage.reads)
    for path in stage.builds:
        reads.update(_declared(path))
    kept = [r for r in reads if not any(r.startswith(other + ".") for other in reads)]
    return tuple(sorted(kept))


def stage_section(cfg: DictConfig, name: str) -> dict[str, Any]:
    """The leaves a stage reads, as a nested mapping shaped like the config."""
    missing = object()
    out: dict[str, Any] = {}
    for prefix in stage_reads(name):
        value = OmegaConf.select(cfg, prefix, default=missing)
        if value is missing:
            raise D2MError(f"stage {name} reads config key '{prefix}', which the config does not have")
        *parents, leaf = prefix.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = to_container(value)
    return _without_averaging_off(_without_augmentations_off(_without_disabled_terms(out)))


def _without_averaging_off(section: dict[str, Any]) -> dict[str, Any]:
    """The section without `optim.ema_decay` where weight averaging is off (at 0), so the stages
    trained before the option existed keep their keys; switching it on changes the key."""
    for block in section.values():
        optim = block.get("optim") if isinstance(block, dict) else None
        if isinstance(optim, dict) and optim.get("ema_decay") == 0:
            del optim["ema_decay"]
    return section


def _without_augmentations_off(section: dict[str, Any]) -> dict[str, Any]:
    """The section without the training-unit augmentations that are off (at 0), for the reason
    loss terms that are off are left out: an augmentation added to the schema keeps every stage."""
    data = section.get("data")
    if isinstance(data, dict):
        for key in [k for k in AUGMENTATIONS if data.get(k) == 0]:
            del data[key]
    return section


def _without_disabled_terms(section: dict[str, Any]) -> dict[str, Any]:
    """The section with every switched-off loss term left out of each block's `losses`.

    A term that is off is never built (`losses.build_terms`), so nothing it holds can change what a
    stage computes: its weight, its warm-up and a term added to the schema switched off (a new
    d2m-lab term) leave the keys, and the stages trained before, as they were. Switching a term on
    adds it, so the key changes.
    """
    for block in section.values():
        losses = block.get("losses") if isinstance(block, dict) else None
        if isinstance(losses, dict):
            for name in [n for n, term in losses.items() if isinstance(term, dict) and term.get("enabled") is False]:
                del losses[name]
    return section


@cache
def stage_formats(name: str) -> dict[str, int]:
    """The checkpoint layouts of the classes a stage builds that declare one (`CHECKPOINT_FORMAT`), and
    the stage's code versions (the evaluation's `METRICS_VERSION`).

    A class bumps its number when its checkpoints stop loading into the code (a network moved, a
    parameter renamed), so a stage trained by older code gets a new key and is trained again instead
    of failing to load, or loading into the wrong place.
    """
    formats = {}
    for path in _stage(name).builds:
        module, _, cls = path.partition(":")
        number = getattr(getattr(importlib.import_module(module), cls), "CHECKPOINT_FORMAT", None)
        if number is not None:
            formats[cls] = int(number)
    for path in _stage(name).versions:  # the metrics' definitions, for a stage that stores scores
        module, _, constant = path.partition(":")
        formats[constant] = int(getattr(importlib.import_module(module), constant))
    return formats


def stage_spec(cfg: DictConfig, name: str) -> dict[str, Any]:
    """What the stage key hashes: the stage's name, its section, its checkpoint formats and its upstream keys."""
    upstream = {up: stage_key(cfg, up) for up in _stage(name).needs}
    formats = stage_formats(name)
    return {"stage": name, **stage_section(cfg, name), **({"formats": formats} if formats else {}),
            "upstream": upstream}


def stage_key(cfg: DictConfig, name: str) -> str:
    return config_hash(stage_spec(cfg, name))


def stage_yaml(cfg: DictConfig, name: str) -> str:
    """`stage.yaml` of a stage folder: its spec, from which `config_hash` gives back the key."""
    return OmegaConf.to_yaml(OmegaConf.create(stage_spec(cfg, name)))


def stages_until(last: str) -> list[str]:
    """The stages needed to finish `last`, in run order."""
    needed: set[str] = set()

    def visit(s: str) -> None:
        if s not in needed:
            needed.add(s)
            for up in _stage(s).needs:
                visit(up)

    visit(last)
    return [s for s in STAGES if s in needed]
