"""Map-style torch Datasets over preloaded tensors: an item is an index into arrays already in memory.

No item reads the disk or loops over frames: windows are slices of one concatenated tensor, units
and sequences are rows gathered from a bank (units.py). This keeps the data loader far cheaper than
even the tiny models, so timing tables measure the models.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from datamodules import augment
from datamodules.skeleton import BONES, NUM_JOINTS


class WindowDataset(Dataset):
    """Style-extractor windows: `features` (W, F) normalised and `label`."""

    def __init__(self, frames: torch.Tensor, starts: torch.Tensor, labels: torch.Tensor, window: int) -> None:
        self.frames, self.starts, self.labels, self.window = frames, starts, labels, int(window)

    def __len__(self) -> int:
        return int(self.starts.numel())

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        s = int(self.starts[i])
        return {"features": self.frames[s : s + self.window], "label": self.labels[i]}


class UnitPairDataset(Dataset):
    """Decomposition pairs: two copies of one unit, each shifted by its own random pixel offset.

    The shift is applied in pixels, before normalisation, as DESIGN.md asks: normalising first would
    make the shift's size depend on each coordinate's spread. Training draws fresh offsets on every
    access (so every epoch sees new ones); validation and test use offsets fixed by the seed, so
    their losses are comparable between epochs and runs.

    Training units may first be changed into another dancer's (augment.py), both copies alike and
    afresh at every access: with `bone_jitter` b > 0 every bone is made U(1 - b, 1 + b) times as long;
    with `scale_jitter` s > 0 the whole unit is scaled by a factor drawn from U(1 - s, 1 + s) about
    the centre of its first pose; with `mirror` p > 0 it is mirrored (left and right swapped) with
    probability p. A dataset of a few dozen dancers otherwise teaches the VAE their sizes and their
    sequences of moves, and it rebuilds an unseen dancer's units worse. Validation and test units are
    never changed.
    """

    def __init__(self, bank: torch.Tensor, index: torch.Tensor, labels: torch.Tensor, mean: torch.Tensor,
                 std: torch.Tensor, jitter: tuple[float, float], train: bool, seed: int,
                 scale_jitter: float = 0.0, bone_jitter: float = 0.0, mirror: float = 0.0) -> None:
        self.bank, self.index, self.labels = bank, index, labels
        self.mean, self.std = mean, std
        self.scale = torch.tensor([jitter[0], jitter[1]], dtype=torch.float32)
        self.scale_jitter = float(scale_jitter)
        self.bone_jitter = float(bone_jitter)
        self.mirror = float(mirror)
        self.train = train
        self.generator = torch.Generator().manual_seed(int(seed))
        if not train:
            self.fixed = self._draw(len(self), self.generator)

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def _draw(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        """(n, 2, 28) offsets: per copy an (x, y) shift repeated over the 14 joints."""
        xy = (torch.rand(n, 2, 2, generator=generator) * 2.0 - 1.0) * self.scale
        return xy.repeat(1, 1, NUM_JOINTS)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([i])[0]

    def __getitems__(self, indices: list[int]) -> list[dict[str, torch.Tensor]]:
        """The items at `indices`, fetched together (the data loader asks for a whole batch): the
        random draws are made item by item, in the order one item at a time would make them, and the
        augmentations then run once over the batch."""
        idx = torch.as_tensor(indices, dtype=torch.int64)
        units = self.bank[self.index[idx, 0]]
        if self.train:
            # in worker processes torch seeds each worker itself; a shared generator would repeat offsets
            gen = self.generator if get_worker_info() is None else None
            draws = [self._draw_item(gen) for _ in indices]
            off = torch.stack([d["offset"] for d in draws])
            units = self._another_dancer(units, draws)
        else:
            off = self.fixed[idx]
        pose_a = (units + off[:, None, 0] - self.mean) / self.std
        pose_b = (units + off[:, None, 1] - self.mean) / self.std
        labels = self.labels[idx]
        return [{"pose_a": pose_a[k], "pose_b": pose_b[k], "label": labels[k]} for k in range(len(indices))]

    def _draw_item(self, gen: torch.Generator | None) -> dict[str, torch.Tensor]:
        """One training item's random numbers: its copies' offsets, then those of the augmentations
        that are on."""
        draw = {"offset": self._draw(1, gen)[0]}
        if self.bone_jitter > 0:
            draw["bones"] = 1.0 + (torch.rand(len(BONES), generator=gen) * 2.0 - 1.0) * self.bone_jitter
        if self.scale_jitter > 0:
            draw["scale"] = 1.0 + (torch.rand((), generator=gen) * 2.0 - 1.0) * self.scale_jitter
        if self.mirror > 0:
            draw["mirror"] = torch.rand((), generator=gen) < self.mirror
        return draw

    def _another_dancer(self, units: torch.Tensor, draws: list[dict[str, torch.Tensor]]) -> torch.Tensor:
        """(N, T, 28) training units with the augmentations that are on, as `draws` drew them."""
        if self.bone_jitter > 0:
            units = augment.rescale_bones(units, torch.stack([d["bones"] for d in draws]))
        if self.scale_jitter > 0:
            units = augment.scale_about_first_pose(units, torch.stack([d["scale"] for d in draws]))
        if self.mirror > 0:
            flip = torch.stack([d["mirror"] for d in draws])
            units = torch.where(flip[:, None, None], augment.mirror(units), units)
        return units


class SequenceDataset(Dataset):
    """Composition sequences: `poses` (L, 32, 28) and the `features` (L*32, F) under them, normalised.

    With `mirror` p > 0 (training only, `mean` and `std` given) a sequence is mirrored with
    probability p, about its first pose (augment.mirror): the same moves danced to the other side,
    to the same music.
    """

    def __init__(self, poses: torch.Tensor, features: torch.Tensor, index: torch.Tensor,
                 labels: torch.Tensor, mirror: float = 0.0, mean: torch.Tensor | None = None,
                 std: torch.Tensor | None = None, seed: int = 0) -> None:
        self.poses, self.features, self.index, self.labels = poses, features, index, labels
        self.mirror, self.mean, self.std = float(mirror), mean, std
        self.generator = torch.Generator().manual_seed(int(seed))

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        rows = self.index[i]
        feats = self.features[rows]
        poses = self.poses[rows]
        gen = self.generator if get_worker_info() is None else None
        if self.mirror > 0 and float(torch.rand((), generator=gen)) < self.mirror:
            pixels = (poses * self.std + self.mean).reshape(1, -1, poses.shape[-1])
            poses = ((augment.mirror(pixels) - self.mean) / self.std).reshape(poses.shape)
        return {
            "poses": poses,
            "features": feats.reshape(-1, feats.shape[-1]),
            "label": self.labels[i],
        }


def tensor(array: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A numpy array as a torch tensor, sharing memory where it can (views stay views)."""
    array = np.asarray(array)
    if array.dtype != np.dtype(str(dtype).replace("torch.", "")):
        array = array.astype(str(dtype).replace("torch.", ""))
    return torch.from_numpy(array)
