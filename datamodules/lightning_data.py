"""The three LightningDataModules (docs/architecture.md, "Batches produced by the DataModules").

Metadata (class names, feature size and spec, normalisation statistics) is read when a module is
built, because LightningModules need those numbers at construction, before `setup` runs; the clips
themselves are loaded into memory at `setup`, once per split.

Labels always index the dataset's full style list (`class_names`), also under a style filter, so a
style extractor trained on every style and a composition model trained on ballet alone agree on
what label 1 means.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from common.errors import D2MError
from datamodules.config import check_augmentations
from datamodules.dataset import SPLITS, CanonicalDataset
from datamodules.motion import kinematic_beats
from datamodules.skeleton import flatten, normalise
from datamodules.torch_data import SequenceDataset, UnitPairDataset, WindowDataset, tensor
from datamodules.units import UnitSpec, build_bank, fixed_starts

_STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}


class _ClipDataModule(pl.LightningDataModule):
    """Shared plumbing: dataset metadata, per-split caching and seeded loaders."""

    kind = ""
    # Experiment config keys whose values reach this DataModule (the stage key hashes them); the
    # worker count decides how the loaders' random streams split across processes.
    CONFIG_READS: tuple[str, ...] = ("data.num_workers",)

    def __init__(self, root: str | Path, batch_size: int = 64, seed: int = 0, num_workers: int = 0,
                 styles: list[str] | None = None) -> None:
        super().__init__()
        self.dataset = CanonicalDataset(root)
        self.root = self.dataset.root
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.num_workers = int(num_workers)
        self.styles = self.dataset.check_styles(styles)
        self.class_names: list[str] = self.dataset.styles
        self.feature_dim: int = self.dataset.feature_dim
        self.feature_spec: dict = self.dataset.feature_spec
        stats = self.dataset.stats
        self.pose_mean: np.ndarray = stats.pose_mean
        self.pose_std: np.ndarray = stats.pose_std
        self.feature_mean: np.ndarray = stats.feature_mean
        self.feature_std: np.ndarray = stats.feature_std
        self._data: dict[str, Dataset] = {}

    def setup(self, stage: str | None = None) -> None:
        for split in _STAGE_SPLITS.get(stage or "", SPLITS):
            if split not in self._data:
                data = self._build(split)
                if len(data) == 0:
                    raise D2MError(f"{self.kind}: the {split} split of {self.root} yields no items "
                                   f"({self._too_short_hint()})")
                self._data[split] = data

    def split_dataset(self, split: str) -> Dataset:
        """The Dataset of one split (built on first use)."""
        if split not in self._data:
            self.setup({"train": "fit", "val": "validate", "test": "test"}[split])
        return self._data[split]

    def _clips(self, split: str, styles: list[str]):
        clips = self.dataset.load_clips(split, styles)
        labels = [self.class_names.index(c.style) for c in clips]
        return clips, labels

    def _normalised_features(self, feats: np.ndarray) -> np.ndarray:
        return ((feats - self.feature_mean) / self.feature_std).astype(np.float32)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed) if shuffle else None
        return DataLoader(self.split_dataset(split), batch_size=self.batch_size, shuffle=shuffle,
                          generator=generator, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def _build(self, split: str) -> Dataset:
        raise NotImplementedError

    def _too_short_hint(self) -> str:
        return "clips too short, or no clip of the chosen styles in it"


class StyleWindowDataModule(_ClipDataModule):
    """Windows of `window` feature frames with the clip's style, every style of the dataset.

    Window starts are precomputed every `stride` frames within each clip (never across clips).
    """

    kind = "style windows"
    CONFIG_READS = (*_ClipDataModule.CONFIG_READS, "data.window_stride", "style.window")

    def __init__(self, root: str | Path, window: int = 30, stride: int = 5, batch_size: int = 64,
                 seed: int = 0, num_workers: int = 0) -> None:
        super().__init__(root, batch_size, seed, num_workers, styles=None)
        if window < 1:
            raise D2MError(f"style window must be at least 1 frame, got {window}")
        self.window = int(window)
        self.stride = int(stride)

    def _build(self, split: str) -> Dataset:
        clips, labels = self._clips(split, self.styles)
        frames, starts, window_labels, offset = [], [], [], 0
        for clip, label in zip(clips, labels):
            s = fixed_starts(clip.n_frames, self.window, self.stride) + offset
            frames.append(self._normalised_features(clip.features))
            starts.append(s)
            window_labels.append(np.full(s.size, label, dtype=np.int64))
            offset += clip.n_frames
        if not clips:
            return WindowDataset(torch.zeros(0, self.feature_dim), torch.zeros(0, dtype=torch.long),
                                 torch.zeros(0, dtype=torch.long), self.window)
        return WindowDataset(tensor(np.concatenate(frames)), tensor(np.concatenate(starts), torch.int64),
                             tensor(np.concatenate(window_labels), torch.int64), self.window)

    def _too_short_hint(self) -> str:
        return f"every clip is shorter than the {self.window}-frame window"


class _UnitBase(_ClipDataModule):
    CONFIG_READS = (*_ClipDataModule.CONFIG_READS, "data.styles", "data.unit_mode", "data.unit_frames",
                    "data.unit_stride", "data.beat_min_gap", "data.beat_max_gap")

    def __init__(self, root: str | Path, spec: UnitSpec | None = None, batch_size: int = 64, seed: int = 0,
                 num_workers: int = 0, styles: list[str] | None = None) -> None:
        super().__init__(root, batch_size, seed, num_workers, styles)
        self.spec = spec or UnitSpec()

    def _split_seed(self, split: str) -> int:
        """The seed of a split's own random stream (jitter offsets, augmentations), apart from the others'."""
        return self.seed + SPLITS.index(split) * 7919

    def _too_short_hint(self) -> str:
        if self.spec.mode == "beat_normalized":
            return "no run of regular kinematic beats long enough, or no clip of the chosen styles"
        return "clips shorter than a unit or sequence, or no clip of the chosen styles in it"


class UnitDataModule(_UnitBase):
    """Dance units as pairs of jittered copies (`pose_a`, `pose_b`, normalised) with their `label`."""

    kind = "units"
    CONFIG_READS = (*_UnitBase.CONFIG_READS, "data.jitter_x", "data.jitter_y", "data.scale_jitter",
                    "data.bone_jitter", "data.mirror")

    def __init__(self, root: str | Path, spec: UnitSpec | None = None,
                 jitter: tuple[float, float] = (50.0, 20.0), batch_size: int = 64, seed: int = 0,
                 num_workers: int = 0, styles: list[str] | None = None, scale_jitter: float = 0.0,
                 bone_jitter: float = 0.0, mirror: float = 0.0) -> None:
        super().__init__(root, spec, batch_size, seed, num_workers, styles)
        self.jitter = (float(jitter[0]), float(jitter[1]))
        check_augmentations(scale_jitter=scale_jitter, bone_jitter=bone_jitter, mirror=mirror)
        self.scale_jitter, self.bone_jitter, self.mirror = float(scale_jitter), float(bone_jitter), float(mirror)

    def _build(self, split: str) -> Dataset:
        clips, labels = self._clips(split, self.styles)
        poses = [flatten(c.poses) for c in clips]
        empty = [np.zeros((c.n_frames, 0), np.float32) for c in clips]  # units need no music
        bank = build_bank(poses, empty, labels, self.spec)
        return UnitPairDataset(tensor(bank.poses), tensor(bank.unit_index, torch.int64),
                               tensor(bank.unit_labels, torch.int64), tensor(self.pose_mean),
                               tensor(self.pose_std), self.jitter, train=split == "train",
                               seed=self._split_seed(split),
                               scale_jitter=self.scale_jitter, bone_jitter=self.bone_jitter,
                               mirror=self.mirror)


class SequenceDataModule(_UnitBase):
    """Sequences of L units (`poses` (L, 32, 28)) with all the music under them (`features` (L*32, F))."""

    kind = "sequences"
    CONFIG_READS = (*_UnitBase.CONFIG_READS, "data.sequence_units", "data.sequence_mirror")

    def __init__(self, root: str | Path, spec: UnitSpec | None = None, batch_size: int = 64, seed: int = 0,
                 num_workers: int = 0, styles: list[str] | None = None, mirror: float = 0.0) -> None:
        super().__init__(root, spec, batch_size, seed, num_workers, styles)
        check_augmentations(sequence_mirror=mirror)
        self.mirror = float(mirror)

    def _build(self, split: str) -> Dataset:
        clips, labels = self._clips(split, self.styles)
        poses = [normalise(flatten(c.poses), self.pose_mean, self.pose_std).astype(np.float32) for c in clips]
        feats = [self._normalised_features(c.features) for c in clips]
        beats = [kinematic_beats(c.poses) for c in clips] if self.spec.mode == "beat_normalized" else None
        bank = build_bank(poses, feats, labels, self.spec, beats)
        return SequenceDataset(tensor(bank.poses), tensor(bank.features), tensor(bank.seq_index, torch.int64),
                               tensor(bank.seq_labels, torch.int64), mirror=self.mirror if split == "train" else 0.0,
                               mean=tensor(self.pose_mean), std=tensor(self.pose_std),
                               seed=self._split_seed(split))
