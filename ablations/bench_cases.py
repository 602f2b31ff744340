"""What `d2m bench` measures: one case per module and variant, its module, its batch, its epoch budget.

A case is a set of config overrides on top of a size preset, so the benchmarked module is built by
the same code, from the same config tree, as in a real run; only the data is synthetic. Random
batches of the right shapes are enough for timing (the step's work does not depend on the values)
and need no dataset on disk, so the bench runs on a fresh machine and the step is never starved by
file reads.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass
from typing import Any

import torch
from omegaconf import DictConfig

from common.errors import D2MError

__all__ = ["CASES", "BenchCase", "EpochBudget", "build_module", "case_config", "epoch_budget", "make_batch",
           "select_cases"]

# The improved style extractor at the study's sizes (512 wide, 2 layers, dropout, 150-frame windows: the
# architecture's defaults); the tiny preset shrinks it so tests stay fast.
IMPROVED_STYLE = ("style.arch=improved",)
IMPROVED_STYLE_TINY = ("style.arch=improved", "style.hidden=16", "style.layers=2", "style.dropout=0.3",
                       "style.window=30")
ALIGNMENT_TERMS = ("kl", "dance_code_alignment", "style_alignment", "movement_alignment")


@dataclass(frozen=True)
class BenchCase:
    """One row of the table: a module family and the overrides that make its variant."""

    key: str  # what --modules selects
    label: str  # what the table shows
    family: str  # style | decomposition | composition
    overrides: tuple[str, ...] = ()
    tiny_overrides: tuple[str, ...] | None = None  # replaces `overrides` at the tiny preset

    def overrides_for(self, preset: str) -> tuple[str, ...]:
        if preset == "tiny" and self.tiny_overrides is not None:
            return self.tiny_overrides
        return self.overrides


CASES: tuple[BenchCase, ...] = (
    BenchCase("style-original", "style extractor (original)", "style"),
    BenchCase("style-improved", "style extractor (improved)", "style", IMPROVED_STYLE, IMPROVED_STYLE_TINY),
    BenchCase("decomposition", "decomposition VAE", "decomposition"),
    # The straightforward formulation: the decoder GRU projects its constant input at every step, and
    # each jittered copy is encoded and each unit decoded in a call of its own.
    BenchCase("decomposition-plain-recurrence", "decomposition VAE (plain recurrence, per-copy calls)",
              "decomposition", ("decomposition.fused_pairs=false", "decomposition.fast_recurrence=false")),
    BenchCase("composition", "composition GAN (full)", "composition"),
    *(BenchCase(f"composition-no-{t}", f"composition GAN ({t} off)", "composition",
                (f"composition.losses.{t}.enabled=false",)) for t in ALIGNMENT_TERMS),
    # Both decoders the composition step runs (dance decoder and pose decoder) on the plain recurrence.
    BenchCase("composition-plain-recurrence", "composition GAN (plain recurrence)", "composition",
              ("composition.fast_recurrence=false", "decomposition.fast_recurrence=false")),
)

# Pairs (fast, plain) whose ratio is the fast-path speed-up.
FAST_PAIRS = (("decomposition", "decomposition-plain-recurrence"), ("composition", "composition-plain-recurrence"))


def select_cases(modules: list[str] | None) -> list[BenchCase]:
    """The cases named by --modules, in table order.

    Each name is a case key, a shell-style pattern over keys (`composition*` for the whole GAN family,
    `*plain-recurrence`), or a family name that is not itself a key (`style`).
    """
    if not modules:
        return list(CASES)
    chosen: set[str] = set()
    for name in (m.strip() for m in modules):
        if not name:
            continue
        hits = [c for c in CASES if fnmatch.fnmatchcase(c.key, name)] or [c for c in CASES if c.family == name]
        if not hits:
            known = ", ".join(c.key for c in CASES)
            raise D2MError(f"unknown bench module '{name}'; known: {known} (patterns such as 'composition*' "
                           "and the family name 'style' also work)")
        chosen |= {c.key for c in hits}
    return [c for c in CASES if c.key in chosen]


def case_config(case: BenchCase, preset: str) -> DictConfig:
    """The resolved experiment config of a case: schema defaults, the preset, the case's overrides."""
    from experiments.config import load_config

    return load_config(None, [f"preset={preset}", *case.overrides_for(preset)])


def _data_shape(cfg: DictConfig) -> dict[str, Any]:
    from datamodules.audio import feature_dim
    from datamodules.config import FeatureConfig
    from datamodules.synth.plan import STYLES

    features = FeatureConfig(**{k: v for k, v in cfg.data.features.items()})
    styles = list(cfg.data.styles) or list(STYLES)
    return {"feature_dim": int(feature_dim(features)), "class_names": styles,
            "units": int(cfg.data.sequence_units), "frames": int(cfg.data.unit_frames), "pose_dim": 28}


def build_module(case: BenchCase, cfg: DictConfig):
    """A freshly initialised LightningModule of the case (on CPU), built as the experiment stages build it."""
    from experiments.config import to_container

    shape = _data_shape(cfg)
    if case.family == "style":
        from lightning_modules.style_module import StyleExtractorModule

        return StyleExtractorModule(to_container(cfg.style), feature_dim=shape["feature_dim"],
                                    class_names=shape["class_names"])
    if case.family == "decomposition":
        from lightning_modules.decomposition_module import DecompositionModule

        return DecompositionModule(to_container(cfg.decomposition), pose_dim=shape["pose_dim"])
    from lightning_modules.composition_module import CompositionModule

    return CompositionModule(to_container(cfg.composition), decomposition_config=to_container(cfg.decomposition),
                             style_config=to_container(cfg.style), feature_dim=shape["feature_dim"],
                             class_names=shape["class_names"], sequence_units=shape["units"],
                             unit_frames=shape["frames"], pose_dim=shape["pose_dim"])


def batch_size(case: BenchCase, cfg: DictConfig) -> int:
    return int(cfg[case.family].optim.batch_size)


def make_batch(case: BenchCase, cfg: DictConfig, device: torch.device | str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random batch shaped as the case's DataModule shapes it (docs/architecture.md), made on `device` once.

    Values are drawn on the CPU from a seeded generator, so every device sees the same numbers, and
    copied to the device here, before any timing. The decomposition pair's second copy is the first
    plus a per-unit offset, as the jittered copies of the real data are.
    """
    shape = _data_shape(cfg)
    b = batch_size(case, cfg)
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(0, len(shape["class_names"]), (b,), generator=g)
    f, t, p = shape["feature_dim"], shape["frames"], shape["pose_dim"]
    if case.family == "style":
        batch = {"features": torch.randn(b, int(cfg.style.window), f, generator=g), "label": label}
    elif case.family == "decomposition":
        pose_a = torch.randn(b, t, p, generator=g)
        batch = {"pose_a": pose_a, "pose_b": pose_a + 0.5 * torch.randn(b, 1, p, generator=g), "label": label}
    else:
        u = shape["units"]
        batch = {"poses": torch.randn(b, u, t, p, generator=g), "features": torch.randn(b, u * t, f, generator=g),
                 "label": label}
    return {k: v.to(device) for k, v in batch.items()}


@dataclass(frozen=True)
class EpochBudget:
    """Training steps the paper's budget takes, and where the numbers come from (for the caption)."""

    steps_per_epoch: int
    epochs: int
    total_steps: int


def _train_clips_per_style(n: int) -> int:
    # datamodules.synth.build.assign_splits: a sixth (at least one) each to val and test.
    hold = max(1, int(round(n / 6)))
    return n - 2 * hold


def epoch_budget(case: BenchCase, cfg: DictConfig) -> EpochBudget:
    """Steps per epoch on the default synthetic dataset of the config's sizes, times the preset's epochs.

    The training windows are counted as the DataModules cut them (fixed windows every
    `data.unit_stride` / `data.window_stride` frames within a clip, training clips only), assuming each
    clip has `seconds x fps` frames; the last batch of an epoch may be partial (no drop_last).
    `optim.max_steps > 0` caps the total, as it does in training.
    """
    from datamodules.units import fixed_starts

    d = cfg.data
    frames = int(d.synth.seconds * d.features.fps)
    clips = _train_clips_per_style(int(d.synth.clips_per_style)) * len(_data_shape(cfg)["class_names"])
    if case.family == "style":
        per_clip = len(fixed_starts(frames, int(cfg.style.window), int(d.window_stride)))
    elif case.family == "decomposition":
        per_clip = len(fixed_starts(frames, int(d.unit_frames), int(d.unit_stride), 1))
    else:
        per_clip = len(fixed_starts(frames, int(d.unit_frames), int(d.unit_stride), int(d.sequence_units)))
    optim = cfg[case.family].optim
    spe = max(1, math.ceil(per_clip * clips / int(optim.batch_size)))
    epochs = int(optim.max_epochs)
    total = spe * epochs
    if int(optim.max_steps) > 0:
        total = min(total, int(optim.max_steps))
    return EpochBudget(spe, epochs, total)
