"""Map-style torch Datasets over preloaded tensors: an item is an index into arrays already in memory.

No item reads the disk or loops over frames: windows are slices of one concatenated tensor, units
and sequences are rows gathered from a bank (units.py). This keeps the data loader far cheaper than
even the tiny models, so timing tables measure the models.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from datamodules.skeleton import NUM_JOINTS


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

    With `scale_jitter` s > 0, a training unit is first scaled, both copies alike, by a factor drawn
    from U(1 - s, 1 + s) about the centre of its first pose: a dataset of a few dozen dancers
    otherwise teaches the VAE their body sizes, and it rebuilds an unseen dancer's units worse.
    Validation and test units are never scaled.
    """

    def __init__(self, bank: torch.Tensor, index: torch.Tensor, labels: torch.Tensor, mean: torch.Tensor,
                 std: torch.Tensor, jitter: tuple[float, float], train: bool, seed: int,
                 scale_jitter: float = 0.0) -> None:
        self.bank, self.index, self.labels = bank, index, labels
        self.mean, self.std = mean, std
        self.scale = torch.tensor([jitter[0], jitter[1]], dtype=torch.float32)
        self.scale_jitter = float(scale_jitter)
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
        unit = self.bank[int(self.index[i, 0])]
        if self.train:
            # in worker processes torch seeds each worker itself; a shared generator would repeat offsets
            gen = self.generator if get_worker_info() is None else None
            off = self._draw(1, gen)[0]
            if self.scale_jitter > 0:
                factor = 1.0 + (float(torch.rand((), generator=gen)) * 2.0 - 1.0) * self.scale_jitter
                centre = unit[0].reshape(NUM_JOINTS, 2).mean(dim=0).repeat(NUM_JOINTS)
                unit = centre + (unit - centre) * factor
        else:
            off = self.fixed[i]
        return {
            "pose_a": (unit + off[0] - self.mean) / self.std,
            "pose_b": (unit + off[1] - self.mean) / self.std,
            "label": self.labels[i],
        }


class SequenceDataset(Dataset):
    """Composition sequences: `poses` (L, 32, 28) and the `features` (L*32, F) under them, normalised."""

    def __init__(self, poses: torch.Tensor, features: torch.Tensor, index: torch.Tensor,
                 labels: torch.Tensor) -> None:
        self.poses, self.features, self.index, self.labels = poses, features, index, labels

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        rows = self.index[i]
        feats = self.features[rows]
        return {
            "poses": self.poses[rows],
            "features": feats.reshape(-1, feats.shape[-1]),
            "label": self.labels[i],
        }


def tensor(array: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A numpy array as a torch tensor, sharing memory where it can (views stay views)."""
    array = np.asarray(array)
    if array.dtype != np.dtype(str(dtype).replace("torch.", "")):
        array = array.astype(str(dtype).replace("torch.", ""))
    return torch.from_numpy(array)
