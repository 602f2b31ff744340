"""The dance-style classifier behind style consistency and the classifier FID.

A GRU reads a window of normalised poses (`window_units` x 32 frames) as frame-to-frame velocities
(by default; `inputs` can add or use the posture) and predicts the dance style; its penultimate
layer is the feature space of `fid_classifier`. On velocities a statue is a window of zeros, one
input whatever the pose, so it cannot be called a style with confidence: a posture-reading
classifier called a static first pose its music's style every time (style consistency 1.0). It is the measuring
instrument of every run on a dataset, so it is trained once per dataset and classifier config on the
real training dances and cached: every run of a matrix is then measured with the same instrument,
and its accuracy on the real test dances says how far its verdicts can be trusted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from common.atomic import read_json, write_json, write_with
from common.errors import D2MError
from evaluation.config import DanceClassifierConfig

UNIT_FRAMES = 32
POSE_DIM = 28
INPUTS = ("velocity", "pose", "pose+velocity")
VELOCITY_SCALE = 10.0  # frame-to-frame steps of normalised poses are ~0.1; scaled to ~1 for the GRU
_CACHE_VERSION = 2  # bump when the network or its training changes, so old caches are not reused


# --- the network -------------------------------------------------------------------------------


class DanceStyleClassifier(nn.Module):
    """GRU over (B, T, 28) normalised poses -> last hidden state -> feature layer -> style logits.

    `inputs` says what the GRU reads per frame: "velocity" (x[t] - x[t-1] of the normalised poses,
    times `VELOCITY_SCALE`, 0 on the first frame), "pose" (the centred posture) or "pose+velocity".

    `features` is the penultimate layer (LeakyReLU after a linear map of the last hidden state): a
    fixed-size description of a dance window that the FID and the distance metrics compare.

    With `center`, each window is first moved (in pixels, through the stored pose statistics) so
    that its mean body centre sits at the training data's mean: the style is then judged from the
    motion, not from where in the picture the dancer happens to stand, which on the built-in data
    raises real-test accuracy by about ten points and keeps a generated dance that drifts sideways
    from being called another style for it. Motion inside the window, travel included, is kept.
    """

    def __init__(self, n_classes: int, hidden: int = 64, layers: int = 1, feature_dim: int = 32,
                 pose_dim: int = POSE_DIM, window: int = 3 * UNIT_FRAMES, class_names: Sequence[str] = (),
                 center: bool = True, pose_mean: np.ndarray | None = None, pose_std: np.ndarray | None = None,
                 inputs: str = "velocity"):
        super().__init__()
        if inputs not in INPUTS:
            raise D2MError(f"evaluation.classifier.inputs must be one of {', '.join(INPUTS)}, got {inputs!r}")
        self.inputs = inputs
        self.gru = nn.GRU(pose_dim * (2 if inputs == "pose+velocity" else 1), hidden, num_layers=layers,
                          batch_first=True)
        self.feature = nn.Sequential(nn.Linear(hidden, feature_dim), nn.LeakyReLU(0.2))
        self.head = nn.Linear(feature_dim, n_classes)
        self.pose_dim = pose_dim
        self.window = int(window)
        self.class_names = list(class_names)
        self.center = bool(center)
        mean = torch.zeros(pose_dim) if pose_mean is None else torch.as_tensor(pose_mean, dtype=torch.float32)
        std = torch.ones(pose_dim) if pose_std is None else torch.as_tensor(pose_std, dtype=torch.float32)
        self.register_buffer("pose_mean", mean.reshape(pose_dim).clone())
        self.register_buffer("pose_std", std.reshape(pose_dim).clone())

    def centred(self, poses: torch.Tensor) -> torch.Tensor:
        """Normalised (B, T, 28) windows with each window's mean joint position moved to the data's."""
        b, t, _ = poses.shape
        xy = (poses * self.pose_std + self.pose_mean).reshape(b, t, -1, 2)
        target = self.pose_mean.reshape(-1, 2).mean(dim=0)
        xy = xy - xy.mean(dim=(1, 2), keepdim=True) + target
        return (xy.reshape(b, t, -1) - self.pose_mean) / self.pose_std

    def features(self, poses: torch.Tensor | np.ndarray) -> torch.Tensor:
        """(N, T, 28) normalised poses -> (N, feature_dim) penultimate features (any T >= 1)."""
        x = torch.as_tensor(poses, dtype=torch.float32, device=self.head.weight.device)
        if x.ndim == 2:
            x = x.unsqueeze(0)
        if x.ndim != 3 or x.shape[-1] != self.pose_dim or x.shape[1] < 1:
            raise D2MError(f"dance classifier: poses must be (N, T, {self.pose_dim}), got {tuple(x.shape)}")
        parts = []
        if "pose" in self.inputs:
            parts.append(self.centred(x) if self.center else x)
        if "velocity" in self.inputs:
            parts.append(torch.cat([torch.zeros_like(x[:, :1]), x[:, 1:] - x[:, :-1]], dim=1) * VELOCITY_SCALE)
        _, h = self.gru(torch.cat(parts, dim=-1))
        return self.feature(h[-1])

    def forward(self, poses: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(poses))

    @torch.no_grad()
    def embed(self, windows: Sequence[np.ndarray], batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """Features and predicted labels of windows of any lengths, as numpy arrays, in input order.

        Windows of equal length are batched together (a GRU needs no padding then), so a dance
        shorter than the training window is read whole instead of being dropped.
        """
        was_training = self.training
        self.eval()
        feats: list[np.ndarray | None] = [None] * len(windows)
        preds = np.zeros(len(windows), dtype=np.int64)
        by_len: dict[int, list[int]] = {}
        for i, w in enumerate(windows):
            by_len.setdefault(int(np.shape(w)[0]), []).append(i)
        for idx in by_len.values():
            for start in range(0, len(idx), batch_size):
                chunk = idx[start:start + batch_size]
                f = self.features(np.stack([np.asarray(windows[i], dtype=np.float32) for i in chunk]))
                p = self.head(f).argmax(dim=1)
                for j, i in enumerate(chunk):
                    feats[i] = f[j].cpu().numpy().astype(np.float64)
                    preds[i] = int(p[j])
        self.train(was_training)
        dim = self.head.in_features
        return (np.stack(feats) if windows else np.zeros((0, dim))), preds


class DanceClassifierModule(pl.LightningModule):
    """Cross-entropy training of a `DanceStyleClassifier`; the network stays a plain nn.Module."""

    def __init__(self, net: DanceStyleClassifier, optim: Any):
        super().__init__()
        self.net = net
        self.optim = optim

    def training_step(self, batch, batch_idx):
        poses, label = batch
        logits = self.net(poses)
        loss = nn.functional.cross_entropy(logits, label)
        self.log("train/loss", loss, prog_bar=False, logger=False)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.net.parameters(), lr=float(self.optim.lr),
                                betas=tuple(float(b) for b in self.optim.betas),
                                weight_decay=float(self.optim.weight_decay))


# --- the dataset, as the classifier and the metrics read it --------------------------------------


@dataclass
class ClipArrays:
    """One clip of the canonical dataset, reduced to what the evaluation reads."""

    clip_id: str
    style: str
    label: int
    poses: np.ndarray  # (T, 28) pixels
    features: np.ndarray  # (T, F) raw (not normalised)
    beats: np.ndarray  # music beats, frame indices at 15 fps
    beats_true: np.ndarray | None = None  # the music's true beats, where the dataset has them (synthetic data)


@dataclass
class DatasetView:
    """The styles, normalisation statistics and clips of one dataset, split by split."""

    root: Path
    class_names: list[str]
    pose_mean: np.ndarray  # (28,)
    pose_std: np.ndarray
    feature_mean: np.ndarray  # (F,)
    feature_std: np.ndarray
    dataset: Any  # datamodules.dataset.CanonicalDataset

    def clips(self, split: str) -> list[ClipArrays]:
        out = []
        for c in self.dataset.load_clips(split):
            if c.style not in self.class_names:
                raise D2MError(f"{self.root}: clip {c.clip_id} has style {c.style!r}, "
                               f"not one of the dataset's styles {self.class_names}")
            poses = np.asarray(c.poses, dtype=np.float32)
            out.append(ClipArrays(
                clip_id=str(c.clip_id), style=str(c.style), label=self.class_names.index(c.style),
                poses=poses.reshape(poses.shape[0], -1),
                features=np.asarray(c.features, dtype=np.float32),
                beats=np.asarray(c.beats, dtype=np.float64).reshape(-1),
                beats_true=(None if c.extra.get("beats_true") is None
                            else np.asarray(c.extra["beats_true"], dtype=np.float64).reshape(-1)),
            ))
        return out

    def normalise(self, poses_px: np.ndarray) -> np.ndarray:
        """(T, 28) or (T, 14, 2) pixels -> (T, 28) normalised with the training split's statistics."""
        return ((np.asarray(poses_px, dtype=np.float32).reshape(len(poses_px), -1) - self.pose_mean)
                / self.pose_std)

    def unnormalise(self, poses: np.ndarray) -> np.ndarray:
        """(T, 28) normalised -> (T, 28) pixels."""
        return np.asarray(poses, dtype=np.float32).reshape(len(poses), -1) * self.pose_std + self.pose_mean


def open_dataset(root: str | Path) -> DatasetView:
    """Read a canonical dataset (DESIGN.md section 2) through `datamodules.dataset.CanonicalDataset`."""
    from datamodules.dataset import CanonicalDataset

    ds = CanonicalDataset(root)
    names = [str(s) for s in ds.styles]
    if not names:
        raise D2MError(f"{root}/dataset.json names no styles")
    st = ds.stats

    def vec(x: Any, floor: bool = False) -> np.ndarray:
        v = np.asarray(x, dtype=np.float32).reshape(-1)
        return np.where(v > 0, v, 1.0).astype(np.float32) if floor else v

    return DatasetView(root=Path(root), class_names=names, pose_mean=vec(st.pose_mean),
                       pose_std=vec(st.pose_std, True), feature_mean=vec(st.feature_mean),
                       feature_std=vec(st.feature_std, True), dataset=ds)


def windows_of(poses: np.ndarray, window: int, stride: int) -> list[np.ndarray]:
    """Windows of `window` frames every `stride` frames; a dance shorter than one window is one window."""
    n = len(poses)
    if n == 0:
        return []
    if n <= window:
        return [poses]
    return [poses[s:s + window] for s in range(0, n - window + 1, max(int(stride), 1))]


# --- training and the cache ----------------------------------------------------------------------


def cache_key(dataset_root: str | Path, cfg: DanceClassifierConfig, seed: int = 0) -> str:
    """sha256 of dataset.json (and clips.csv, which fixes the splits), the classifier config and seed."""
    root = Path(dataset_root)
    h = hashlib.sha256()
    h.update(f"dance-classifier-v{_CACHE_VERSION}\n".encode())
    for name in ("dataset.json", "clips.csv"):
        path = root / name
        if path.is_file():
            h.update(name.encode() + b"\n" + path.read_bytes() + b"\n")
    h.update(json.dumps(_cfg_dict(cfg), sort_keys=True).encode())
    h.update(f"\nseed={int(seed)}".encode())
    return h.hexdigest()


def _cfg_dict(cfg: Any) -> dict:
    if dataclasses.is_dataclass(cfg):
        return dataclasses.asdict(cfg)
    try:
        from omegaconf import OmegaConf

        if OmegaConf.is_config(cfg):
            return OmegaConf.to_container(cfg, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    return dict(cfg)


def as_classifier_config(cfg: Any) -> DanceClassifierConfig:
    """A DanceClassifierConfig from itself, an OmegaConf node or a plain dict."""

    if isinstance(cfg, DanceClassifierConfig):
        return cfg
    d = _cfg_dict(cfg)
    optim = d.pop("optim", {}) or {}
    base = DanceClassifierConfig()
    known = {f.name for f in dataclasses.fields(DanceClassifierConfig)}
    unknown = set(d) - known
    if unknown:
        raise D2MError(f"evaluation.classifier: unknown key(s) {sorted(unknown)}")
    return dataclasses.replace(base, **d, optim=dataclasses.replace(base.optim, **_cfg_dict(optim)))


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Silence Lightning's banners and data-loader hints while the classifier trains inside another stage."""
    loggers = [logging.getLogger(n) for n in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=".*GPU available but not used.*")
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=FutureWarning)
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock so that parallel runs on one dataset train the classifier once, not twice."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            import fcntl

            fcntl.flock(f, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - non-POSIX: no lock, the atomic writes still hold
            pass
        yield


def _build(cfg: DanceClassifierConfig, class_names: Sequence[str], pose_mean=None,
           pose_std=None) -> DanceStyleClassifier:
    return DanceStyleClassifier(len(class_names), hidden=cfg.hidden, layers=cfg.layers,
                                feature_dim=cfg.feature_dim, window=cfg.window_units * UNIT_FRAMES,
                                class_names=class_names, center=cfg.center, pose_mean=pose_mean,
                                pose_std=pose_std, inputs=cfg.inputs)


def _labelled_windows(view: DatasetView, split: str, window: int, stride: int,
                      full_only: bool) -> tuple[list[np.ndarray], np.ndarray]:
    xs, ys = [], []
    for clip in view.clips(split):
        for w in windows_of(view.normalise(clip.poses), window, stride):
            if full_only and len(w) < window:
                continue
            xs.append(w)
            ys.append(clip.label)
    return xs, np.asarray(ys, dtype=np.int64)


def _train(view: DatasetView, cfg: DanceClassifierConfig, seed: int, workdir: Path) -> tuple[
        DanceStyleClassifier, dict]:
    window = cfg.window_units * UNIT_FRAMES
    stride = cfg.window_stride if cfg.window_stride > 0 else window
    x_train, y_train = _labelled_windows(view, "train", window, stride, full_only=True)
    if not x_train:
        raise D2MError(f"{view.root}: no training clip is {window} frames long; the dance classifier "
                       f"needs at least one (lower evaluation.classifier.window_units)")
    started = time.perf_counter()
    with torch.random.fork_rng(devices=[]), _quiet_lightning():
        torch.manual_seed(seed)
        net = _build(cfg, view.class_names, view.pose_mean, view.pose_std)
        module = DanceClassifierModule(net, cfg.optim)
        data = TensorDataset(torch.as_tensor(np.stack(x_train)), torch.as_tensor(y_train))
        loader = DataLoader(data, batch_size=int(cfg.optim.batch_size), shuffle=True,
                            generator=torch.Generator().manual_seed(seed))
        trainer = pl.Trainer(
            accelerator="cpu", devices=1, max_epochs=int(cfg.optim.max_epochs),
            max_steps=int(cfg.optim.max_steps), gradient_clip_val=float(cfg.optim.grad_clip) or None,
            logger=False, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False, default_root_dir=str(workdir), num_sanity_val_steps=0,
        )
        trainer.fit(module, loader)
    net.cpu().eval()
    seconds = time.perf_counter() - started

    _, train_pred = net.embed(x_train)
    x_test, y_test = _labelled_windows(view, "test", window, stride, full_only=False)
    report: dict[str, Any] = {
        "class_names": view.class_names,
        "window": window,
        "n_train_windows": len(x_train),
        "n_test_windows": len(x_test),
        "train_accuracy": float(np.mean(train_pred == y_train)),
        "train_seconds": seconds,
        "seed": int(seed),
        "config": _cfg_dict(cfg),
    }
    if x_test:
        _, test_pred = net.embed(x_test)
        confusion = np.zeros((len(view.class_names),) * 2, dtype=np.int64)
        np.add.at(confusion, (y_test, test_pred), 1)
        report["test_accuracy"] = float(np.mean(test_pred == y_test))
        report["confusion"] = confusion.tolist()  # rows: true style, columns: predicted as
    else:
        report["test_accuracy"] = float("nan")
        report["confusion"] = []
    return net, report


def get_dance_classifier(dataset_root: str | Path, cfg: DanceClassifierConfig, cache_dir: str | Path,
                         seed: int = 0) -> tuple[DanceStyleClassifier, dict]:
    """The trained dance-style classifier of a dataset: loaded from `cache_dir`, else trained there.

    The cache entry `cache_dir/dance_classifier-<key>/` holds `model.pt` (weights, config and class
    names) and `report.json` (real-test accuracy, confusion, sizes); both are written atomically and
    the report last, so an entry with a report is complete. The returned report carries
    `loaded_from_cache`. The model is on the CPU in eval mode.
    """
    cfg = as_classifier_config(cfg)
    key = cache_key(dataset_root, cfg, seed)
    folder = Path(cache_dir) / f"dance_classifier-{key[:16]}"
    weights, report_path = folder / "model.pt", folder / "report.json"
    with _file_lock(Path(cache_dir) / f".dance_classifier-{key[:16]}.lock"):
        if report_path.is_file() and weights.is_file():
            saved = torch.load(weights, map_location="cpu", weights_only=True)
            net = _build(cfg, saved["class_names"])
            net.load_state_dict(saved["state_dict"])
            net.eval()
            report = read_json(report_path)
            return net, {**report, "loaded_from_cache": True}
        view = open_dataset(dataset_root)
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder) as work:
            net, report = _train(view, cfg, seed, Path(work))
        report["key"] = key
        payload = {"state_dict": net.state_dict(), "class_names": view.class_names}
        write_with(weights, lambda p: torch.save(payload, p))
        write_json(report_path, report)
        return net, {**report, "loaded_from_cache": False}
