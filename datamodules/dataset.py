"""d2m-lab's canonical dataset on disk: one writer that every source goes through, and its reader.

Layout (DESIGN.md section 2):
    dataset.json          name, format version, fps, sample rate, styles, joint names, feature spec, counts
    clips.csv             clip_id, style, split, n_frames, source (+ source-specific columns)
    clips/<clip_id>.npz   poses (T,14,2) float32 px, features (T,F) float32, beats (frame indices),
                          style, optional confidence (T,14) and source-specific arrays
    audio/<clip_id>.wav   the music, where the source has it
    stats.npz             pose_mean/pose_std (28,), feature_mean/feature_std (F,), training split only

The writer builds the whole folder in a temporary sibling and renames it into place at the end, so
a crash or a bad clip halfway leaves no partial dataset behind. Statistics are accumulated from
the training split only: normalising with test-split numbers would leak the test set.

The writer never deletes what d2m-lab did not make: an output folder must be new, empty, or (with
`force`) a complete d2m-lab dataset of the same source, and it may not hold or sit inside an input.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common.atomic import WriteError, atomic_dir, probe_write, read_json, write_json, write_text, write_with
from common.errors import D2MError
from datamodules.skeleton import JOINT_NAMES, NUM_JOINTS, POSE_DIM, flatten

FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")
STD_FLOOR = 1e-6  # a coordinate that never moves must not divide by zero


@dataclass
class Clip:
    clip_id: str
    style: str
    split: str
    poses: np.ndarray  # (T, 14, 2) float32 pixels
    features: np.ndarray  # (T, F) float32
    beats: np.ndarray  # music beats, int64 frame indices
    confidence: np.ndarray | None = None  # (T, 14) float32
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return int(self.poses.shape[0])


@dataclass
class Stats:
    pose_mean: np.ndarray  # (28,)
    pose_std: np.ndarray
    feature_mean: np.ndarray  # (F,)
    feature_std: np.ndarray


class _Moments:
    """Running sums in float64 for mean and standard deviation over frames."""

    def __init__(self) -> None:
        self.n = 0
        self.s: np.ndarray | float = 0.0
        self.ss: np.ndarray | float = 0.0

    def add(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64)
        self.n += x.shape[0]
        self.s = self.s + x.sum(axis=0)
        self.ss = self.ss + (x * x).sum(axis=0)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        mean = self.s / self.n
        var = np.maximum(self.ss / self.n - mean * mean, 0.0)
        return mean.astype(np.float32), np.maximum(np.sqrt(var), STD_FLOOR).astype(np.float32)


class DatasetWriter:
    """Adds clips one at a time (memory stays flat) to a folder; `finish` writes the tables."""

    def __init__(self, folder: Path, *, name: str, styles: Iterable[str], feature_spec: dict,
                 feature_dim: int, sample_rate: int, fps: int = 15, source: str = "",
                 extra_meta: dict | None = None, extra_stats: dict[str, np.ndarray] | None = None) -> None:
        self.folder = Path(folder)
        self.name = name
        self.styles = list(styles)
        self.feature_spec = dict(feature_spec)
        self.feature_dim = int(feature_dim)
        self.sample_rate = int(sample_rate)
        self.fps = int(fps)
        self.source = source
        self.extra_meta = dict(extra_meta or {})
        self.extra_stats = dict(extra_stats or {})  # e.g. an imported release's own statistics
        self.rows: list[dict[str, Any]] = []
        self._pose = _Moments()
        self._feat = _Moments()
        try:
            (self.folder / "clips").mkdir(parents=True, exist_ok=True)
            (self.folder / "audio").mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise WriteError(self.folder, str(err.strerror or err)) from None

    def audio_path(self, clip_id: str) -> Path:
        return self.folder / "audio" / f"{clip_id}.wav"

    def write_audio(self, clip_id: str, wave: np.ndarray, sample_rate: int) -> Path:
        """Store a clip's music as 16-bit WAV; a full disk is a WriteError with the system's reason."""
        from datamodules.audio import write_wav

        path = self.audio_path(clip_id)
        try:
            write_wav(path, wave, sample_rate)
        except RuntimeError as err:  # libsndfile reports a failed write as 'System error.'
            reason = probe_write(path.parent, 2 * int(np.size(wave)) + 4096) or str(err).strip() or "write failed"
            raise WriteError(path, reason) from None
        return path

    def add_clip(self, clip: Clip, source: str = "", columns: dict[str, Any] | None = None) -> None:
        """Validate and write one clip; its audio (if any) must already be at `audio_path(clip_id)`."""
        name = f"clip '{clip.clip_id}'" + (f" ({source})" if source else "")
        if any(r["clip_id"] == clip.clip_id for r in self.rows):
            raise D2MError(f"{name}: duplicate clip id")
        if clip.style not in self.styles:
            raise D2MError(f"{name}: unknown style '{clip.style}'; known: {', '.join(self.styles)}")
        if clip.split not in SPLITS:
            raise D2MError(f"{name}: unknown split '{clip.split}'; known: {', '.join(SPLITS)}")
        poses = np.asarray(clip.poses, dtype=np.float32)
        feats = np.asarray(clip.features, dtype=np.float32)
        if poses.ndim != 3 or poses.shape[1:] != (NUM_JOINTS, 2):
            raise D2MError(f"{name}: poses must be (T, {NUM_JOINTS}, 2), got {poses.shape}")
        if feats.ndim != 2 or feats.shape[1] != self.feature_dim:
            raise D2MError(f"{name}: features must be (T, {self.feature_dim}), got {feats.shape}")
        if feats.shape[0] != poses.shape[0]:
            raise D2MError(f"{name}: {poses.shape[0]} pose frames but {feats.shape[0]} feature frames")
        for label, arr in (("poses", poses), ("features", feats)):
            if not np.all(np.isfinite(arr)):
                raise D2MError(f"{name}: {label} contain NaN or infinite values")
        arrays: dict[str, np.ndarray] = {
            "poses": poses, "features": feats, "beats": np.asarray(clip.beats, dtype=np.int64),
            "style": np.array(clip.style),
        }
        if clip.confidence is not None:
            arrays["confidence"] = np.asarray(clip.confidence, dtype=np.float32)
        arrays.update({k: np.asarray(v) for k, v in clip.extra.items()})
        write_with(self.folder / "clips" / f"{clip.clip_id}.npz", lambda tmp: _save_npz(tmp, arrays))
        self.rows.append({
            "clip_id": clip.clip_id, "style": clip.style, "split": clip.split,
            "n_frames": int(poses.shape[0]), "source": source, **(columns or {}),
        })
        if clip.split == "train":
            self._pose.add(flatten(poses))
            self._feat.add(feats)

    def finish(self) -> None:
        if not self.rows:
            raise D2MError(f"dataset '{self.name}': no clips to write")
        if self._pose.n == 0:
            raise D2MError(f"dataset '{self.name}': no clip in the training split, so no statistics")
        pose_mean, pose_std = self._pose.result()
        feat_mean, feat_std = self._feat.result()
        stats = {"pose_mean": pose_mean, "pose_std": pose_std,
                 "feature_mean": feat_mean, "feature_std": feat_std}
        stats.update(self.extra_stats)
        write_with(self.folder / "stats.npz", lambda tmp: _save_npz(tmp, stats))
        table = pd.DataFrame(self.rows)
        write_text(self.folder / "clips.csv", table.to_csv(index=False))
        has_audio = all(self.audio_path(r["clip_id"]).exists() for r in self.rows)
        meta = {
            "name": self.name, "version": FORMAT_VERSION, "fps": self.fps,
            "sample_rate": self.sample_rate, "styles": self.styles, "joint_names": list(JOINT_NAMES),
            "feature_spec": self.feature_spec, "feature_dim": self.feature_dim, "source": self.source,
            "has_audio": has_audio,
            "counts": {
                "clips": len(self.rows), "frames": int(table["n_frames"].sum()),
                "by_style": {s: int((table["style"] == s).sum()) for s in self.styles},
                "by_split": {s: int((table["split"] == s).sum()) for s in SPLITS},
            },
            **self.extra_meta,
        }
        write_json(self.folder / "dataset.json", meta)  # last: its presence marks a complete dataset


def check_out(out: str | Path, source: str, inputs: Iterable[str | Path] = (), force: bool = False,
              flag: str = "--out") -> bool:
    """Refuse an output folder that writing a `source` dataset could damage; True if it will be replaced.

    Allowed: a new or empty folder, or with `force` a complete d2m-lab dataset made by the same source.
    Refused (D2MError): a file, any other non-empty folder, an input, a folder inside an input or one
    holding an input.
    """
    out = Path(out)
    where = out.resolve()
    for given in inputs:
        inp = Path(given).resolve()
        if where == inp or inp in where.parents:
            raise D2MError(f"{flag} {out} is inside the input {given}; choose a folder outside it")
        if where in inp.parents:
            raise D2MError(f"{flag} {out} holds the input {given}; choose another output folder")
    if not out.exists() and not out.is_symlink():
        return False
    if not out.is_dir():
        raise D2MError(f"{flag} {out} is a file, not a folder")
    if not any(out.iterdir()):
        return False
    kind = _dataset_source(out)
    if kind is None:
        raise D2MError(f"{flag} {out} is not empty and is not a d2m-lab dataset; nothing was written "
                       "(choose a new or empty folder)")
    if kind != source:
        raise D2MError(f"{flag} {out} holds a d2m-lab dataset from '{kind}', not '{source}'; nothing was written "
                       "(choose another folder)")
    if not force:
        raise D2MError(f"{flag} {out} already holds a d2m-lab '{source}' dataset; pass --force to replace it")
    return True


def _dataset_source(root: Path) -> str | None:
    """The `source` recorded in a complete dataset's dataset.json, or None if it is not one."""
    try:
        meta = read_json(root / "dataset.json")
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or "version" not in meta or not (root / "clips.csv").is_file():
        return None
    return str(meta.get("source", ""))


@contextlib.contextmanager
def dataset_writer(out: str | Path, *, force: bool = False, inputs: Iterable[str | Path] = (),
                   **kwargs: Any) -> Iterator[DatasetWriter]:
    """Build a dataset in a temporary folder beside `out`; move it to `out` only if all went well.

    `out` is checked by `check_out` first (with `force`, a same-source dataset is replaced whole).
    A file-system failure is one D2MError naming `out`, the file and the reason; nothing is left.
    """
    replace = check_out(out, kwargs.get("source", ""), inputs, force)
    try:
        with atomic_dir(out, replace=replace) as tmp:
            writer = DatasetWriter(tmp, **kwargs)
            try:
                yield writer
                writer.finish()
            except WriteError as err:
                inside = err.path.relative_to(tmp) if tmp in err.path.parents else err.path.name
                raise D2MError(f"cannot write dataset {out} ({inside}): {err.reason}; nothing was written") from None
    except WriteError as err:
        raise D2MError(f"cannot write dataset {out}: {err.reason}; nothing was written") from None


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    Path(path).write_bytes(buf.getvalue())


def is_complete(root: str | Path) -> bool:
    return (Path(root) / "dataset.json").is_file()


class CanonicalDataset:
    """Read access to a canonical dataset: metadata, clip table, clips and statistics."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise D2MError(f"dataset folder not found: {self.root}")
        meta_path = self.root / "dataset.json"
        if not meta_path.is_file():
            raise D2MError(f"not a d2m-lab dataset (no dataset.json): {self.root}")
        try:
            self.meta: dict = read_json(meta_path)
        except ValueError as err:
            raise D2MError(f"cannot parse {meta_path}: {err}") from None
        table_path = self.root / "clips.csv"
        if not table_path.is_file():
            raise D2MError(f"dataset clip table missing: {table_path}")
        self.clips: pd.DataFrame = pd.read_csv(table_path, dtype={"clip_id": str, "style": str, "split": str},
                                               keep_default_na=False)
        self._stats: Stats | None = None

    @property
    def styles(self) -> list[str]:
        return list(self.meta["styles"])

    @property
    def fps(self) -> int:
        return int(self.meta["fps"])

    @property
    def feature_spec(self) -> dict:
        return dict(self.meta["feature_spec"])

    @property
    def feature_dim(self) -> int:
        return int(self.meta["feature_dim"])

    @property
    def stats(self) -> Stats:
        if self._stats is None:
            path = self.root / "stats.npz"
            if not path.is_file():
                raise D2MError(f"dataset statistics file missing: {path} (rebuild or re-import the dataset)")
            with np.load(path) as data:
                keys = ("pose_mean", "pose_std", "feature_mean", "feature_std")
                missing = [k for k in keys if k not in data]
                if missing:
                    raise D2MError(f"dataset statistics file {path} lacks {', '.join(missing)}")
                self._stats = Stats(*(data[k].astype(np.float32) for k in keys))
            shapes = (self._stats.pose_mean.shape, self._stats.feature_mean.shape)
            if shapes != ((POSE_DIM,), (self.feature_dim,)):
                raise D2MError(f"dataset statistics file {path} has the wrong shapes for this dataset")
        return self._stats

    def check_styles(self, styles: Iterable[str] | None) -> list[str]:
        """The requested styles (all when empty or None); an unknown one is a D2MError."""
        wanted = list(styles or [])
        unknown = [s for s in wanted if s not in self.styles]
        if unknown:
            raise D2MError(f"unknown style '{unknown[0]}' for dataset {self.root}; "
                           f"it has: {', '.join(self.styles)}")
        return wanted or self.styles

    def clip_ids(self, split: str | None = None, styles: Iterable[str] | None = None) -> list[str]:
        if split is not None and split not in SPLITS:
            raise D2MError(f"unknown split '{split}'; known: {', '.join(SPLITS)}")
        chosen = self.check_styles(styles)
        rows = self.clips[self.clips["style"].isin(chosen)]
        if split is not None:
            rows = rows[rows["split"] == split]
        return rows["clip_id"].tolist()

    def load_clip(self, clip_id: str) -> Clip:
        row = self.clips[self.clips["clip_id"] == clip_id]
        if row.empty:
            raise D2MError(f"clip '{clip_id}' is not in {self.root / 'clips.csv'}")
        path = self.root / "clips" / f"{clip_id}.npz"
        if not path.is_file():
            raise D2MError(f"clip file missing: {path}")
        try:
            with np.load(path) as data:
                arrays = {k: data[k] for k in data.files}
        except Exception as err:  # zipfile, pickle and value errors all mean a damaged file
            raise D2MError(f"cannot read clip file {path}: {err}") from None
        for key in ("poses", "features", "beats"):
            if key not in arrays:
                raise D2MError(f"clip file {path} lacks '{key}'")
        known = {"poses", "features", "beats", "style", "confidence"}
        return Clip(
            clip_id=clip_id, style=str(row["style"].iloc[0]), split=str(row["split"].iloc[0]),
            poses=arrays["poses"].astype(np.float32), features=arrays["features"].astype(np.float32),
            beats=arrays["beats"].astype(np.int64), confidence=arrays.get("confidence"),
            extra={k: v for k, v in arrays.items() if k not in known},
        )

    def load_clips(self, split: str | None = None, styles: Iterable[str] | None = None) -> list[Clip]:
        return [self.load_clip(cid) for cid in self.clip_ids(split, styles)]

    def audio_path(self, clip_id: str) -> Path:
        path = self.root / "audio" / f"{clip_id}.wav"
        if not path.is_file():
            raise D2MError(f"no audio for clip '{clip_id}' in this dataset: {path}")
        return path
