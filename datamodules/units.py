"""Dance units (32 frames) and unit sequences, cut from clips in one of two ways.

- `fixed`: plain 32-frame windows starting every `data.unit_stride` frames. A sequence of L units is
  L back-to-back windows (frames s .. s + 32 L), with the audio features of those frames.
- `beat_normalized` (the original release's units): cut at the dance's kinematic beats and resampled
  so that four beats fall on frames 3, 11, 19 and 27 (one beat every 8 frames). A unit can start at
  every beat; a sequence is the units at beats k, k+4, ..., k+4(L-1), and the features under each
  unit are resampled with the same time map, so music and motion stay aligned after warping.

Both produce a bank of units (N, 32, D) and index arrays into it, so a DataModule gathers a
sequence with one indexing operation. For `fixed` the bank is a strided view of the clip frames (no
copy); for `beat_normalized` it is materialised once, at setup.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.errors import D2MError
from datamodules.motion import kinematic_beats
from datamodules.skeleton import POSE_DIM

UNIT_FRAMES = 32
BEATS_PER_UNIT = 4
UNIT_MODES = ("fixed", "beat_normalized")


def beat_frames_in_unit(unit_frames: int = UNIT_FRAMES) -> np.ndarray:
    """Where the four beats sit in a beat-normalised unit: 3, 11, 19, 27 for 32 frames."""
    per_beat = unit_frames // BEATS_PER_UNIT
    return (per_beat * 3) // 8 + per_beat * np.arange(BEATS_PER_UNIT)


def fixed_starts(n_frames: int, unit_frames: int = UNIT_FRAMES, stride: int = 8,
                 span_units: int = 1) -> np.ndarray:
    """Start frames of windows of `span_units` back-to-back units that fit in a clip."""
    last = n_frames - unit_frames * span_units
    if last < 0:
        return np.zeros(0, dtype=np.int64)
    return np.arange(0, last + 1, max(1, int(stride)), dtype=np.int64)


def beat_time_maps(beats: np.ndarray, min_gap: int = 4, max_gap: int = 16,
                   unit_frames: int = UNIT_FRAMES) -> tuple[np.ndarray, np.ndarray]:
    """Source frame times for a beat-normalised unit starting at each usable beat.

    Returns (k, maps): beat indices k and maps (len(k), 32) of fractional source frames, such that
    unit frame 3 + 8 j sits exactly on beat k + j (for 32-frame units). Frames before the first
    beat and after the fourth follow the neighbouring beat intervals (k-1 and k+4 must exist).
    Units whose beat intervals fall outside [min_gap, max_gap] frames are skipped: a pause or a
    missed beat there would stretch a unit out of shape.
    """
    beats = np.asarray(beats, dtype=np.float64)
    n = beats.size
    ks = np.arange(1, n - BEATS_PER_UNIT)
    if ks.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros((0, unit_frames))
    gaps = np.diff(beats)
    ok = np.array([np.all((gaps[k - 1 : k + 4] >= min_gap) & (gaps[k - 1 : k + 4] <= max_gap)) for k in ks])
    ks = ks[ok]
    per_beat = unit_frames // BEATS_PER_UNIT
    beat_coord = (np.arange(unit_frames) - beat_frames_in_unit(unit_frames)[0]) / per_beat  # beats from k
    coords = ks[:, None] + beat_coord[None, :]
    maps = np.interp(coords.ravel(), np.arange(n), beats).reshape(coords.shape)
    return ks.astype(np.int64), maps


def resample(frames: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Linear interpolation of (T, D) frames at fractional times (...,) -> (..., D)."""
    frames = np.asarray(frames)
    t = np.clip(times, 0, frames.shape[0] - 1)
    i0 = np.floor(t).astype(np.int64)
    i1 = np.minimum(i0 + 1, frames.shape[0] - 1)
    a = (t - i0)[..., None]
    return ((1 - a) * frames[i0] + a * frames[i1]).astype(frames.dtype)


@dataclass
class UnitBank:
    """The units of one split, with index rows into a bank of 32-frame windows.

    `poses` (N, 32, 28) and `features` (N, 32, F) are the bank; `unit_index` (U, 1) names the units
    a UnitDataModule serves and `seq_index` (M, L) the units of each sequence, both with labels.
    """

    poses: np.ndarray
    features: np.ndarray
    unit_index: np.ndarray
    unit_labels: np.ndarray
    seq_index: np.ndarray
    seq_labels: np.ndarray


@dataclass
class UnitSpec:
    """How units are cut (the data block's numbers)."""

    mode: str = "fixed"
    unit_frames: int = UNIT_FRAMES
    stride: int = 8  # fixed: frames between unit (and sequence) starts
    sequence_units: int = 3
    min_gap: int = 4  # beat_normalized: usable beat intervals, frames
    max_gap: int = 16

    def __post_init__(self) -> None:
        if self.mode not in UNIT_MODES:
            raise D2MError(f"unknown data.unit_mode '{self.mode}'; known: {', '.join(UNIT_MODES)}")
        if self.unit_frames < BEATS_PER_UNIT * 2 or self.unit_frames % BEATS_PER_UNIT:
            raise D2MError(f"data.unit_frames must be a multiple of {BEATS_PER_UNIT}, at least 8; "
                           f"got {self.unit_frames}")
        if self.sequence_units < 1 or self.stride < 1:
            raise D2MError("data.sequence_units and data.unit_stride must be at least 1")


def beat_normalized_units(poses: np.ndarray, features: np.ndarray, spec: UnitSpec,
                          beats: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One clip -> (units (N,32,28), features (N,32,F), sequences (M,L) as rows into those units).

    `beats` defaults to the dance's kinematic beats (poses (T,28) in pixels).
    """
    if beats is None:
        beats = kinematic_beats(poses)
    ks, maps = beat_time_maps(beats, spec.min_gap, spec.max_gap, spec.unit_frames)
    unit_poses = resample(poses, maps)
    unit_feats = resample(features, maps)
    row_of = {int(k): i for i, k in enumerate(ks)}
    seqs = []
    for k in ks:
        chain = [int(k) + BEATS_PER_UNIT * j for j in range(spec.sequence_units)]
        if all(c in row_of for c in chain):
            seqs.append([row_of[c] for c in chain])
    seq = np.asarray(seqs, dtype=np.int64).reshape(-1, spec.sequence_units)
    return unit_poses, unit_feats, seq


def build_bank(clips_poses: list[np.ndarray], clips_feats: list[np.ndarray], labels: list[int],
               spec: UnitSpec, beats: list[np.ndarray] | None = None) -> UnitBank:
    """Units and sequences of several clips, from flat (T, 28) poses and (T, F) features each.

    `beats` (beat_normalized only): the kinematic beats of each clip, when the poses given are
    already normalised (beats are found on pixel poses, where every joint counts alike).
    """
    if spec.mode == "fixed":
        return _fixed_bank(clips_poses, clips_feats, labels, spec)
    return _beat_bank(clips_poses, clips_feats, labels, spec, beats)


def _fixed_bank(clips_poses, clips_feats, labels, spec: UnitSpec) -> UnitBank:
    """A strided view over all clips' frames: bank row s is the window starting at global frame s."""
    u, length = spec.unit_frames, spec.sequence_units
    unit_idx, seq_idx, unit_lab, seq_lab = [], [], [], []
    offset = 0
    for p, label in zip(clips_poses, labels):
        units = fixed_starts(p.shape[0], u, spec.stride, 1) + offset
        seqs = fixed_starts(p.shape[0], u, spec.stride, length) + offset
        unit_idx.append(units[:, None])
        seq_idx.append(seqs[:, None] + u * np.arange(length)[None, :])
        unit_lab.append(np.full(units.size, label, dtype=np.int64))
        seq_lab.append(np.full(seqs.size, label, dtype=np.int64))
        offset += p.shape[0]
    dim_f = clips_feats[0].shape[1] if clips_feats else 0
    return UnitBank(
        poses=_windows(_cat(clips_poses, (0, POSE_DIM)), u),
        features=_windows(_cat(clips_feats, (0, dim_f)), u),
        unit_index=_cat(unit_idx, (0, 1), np.int64), unit_labels=_cat(unit_lab, (0,), np.int64),
        seq_index=_cat(seq_idx, (0, length), np.int64), seq_labels=_cat(seq_lab, (0,), np.int64),
    )


def _cat(arrays: list[np.ndarray], empty_shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
    return np.concatenate(arrays) if arrays else np.zeros(empty_shape, dtype=dtype)


def _windows(frames: np.ndarray, size: int) -> np.ndarray:
    """(T, D) -> (T - size + 1, size, D) view of every window, without copying (never written to)."""
    if frames.shape[0] < size:
        return np.zeros((0, size, frames.shape[1]), dtype=frames.dtype)
    view = np.lib.stride_tricks.sliding_window_view(frames, size, axis=0, writeable=True)
    return view.transpose(0, 2, 1)


def _beat_bank(clips_poses, clips_feats, labels, spec: UnitSpec, beats) -> UnitBank:
    all_p, all_f, all_seq, unit_lab, seq_lab = [], [], [], [], []
    offset = 0
    beats = beats if beats is not None else [None] * len(clips_poses)
    for p, f, label, b in zip(clips_poses, clips_feats, labels, beats):
        up, uf, seq = beat_normalized_units(p, f, spec, b)
        all_p.append(up)
        all_f.append(uf)
        all_seq.append(seq + offset)
        unit_lab.append(np.full(up.shape[0], label, dtype=np.int64))
        seq_lab.append(np.full(seq.shape[0], label, dtype=np.int64))
        offset += up.shape[0]
    dim_f = clips_feats[0].shape[1] if clips_feats else 0
    poses = _cat(all_p, (0, spec.unit_frames, POSE_DIM))
    return UnitBank(
        poses=poses, features=_cat(all_f, (0, spec.unit_frames, dim_f)),
        unit_index=np.arange(poses.shape[0], dtype=np.int64)[:, None],
        unit_labels=_cat(unit_lab, (0,), np.int64),
        seq_index=_cat(all_seq, (0, spec.sequence_units), np.int64), seq_labels=_cat(seq_lab, (0,), np.int64),
    )
