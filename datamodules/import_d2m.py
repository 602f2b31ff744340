"""`d2m data import-d2m`: the original release's `data.zip` layout into the canonical format.

The release layout (DESIGN.md section 2):
    unitList/{zumba,ballet,hiphop}_unit.txt, _unitseq3.txt, _unitseq4.txt   (paths starting with data/)
    <style>/<video>/<clip>/unit/*.npy          (32, 14, 2) beat-normalised units
    <style>/<video>/<clip>/unitseq3/*.npy      (3, 32, 14, 2), unitseq4/*.npy (4, 32, 14, 2)
    <style>/<video>/<clip>/aud/c<clip>_fps15.npy   (T, 28) audio features at 15 fps
    stats/all_onbeat_{mean,std}.npy, stats/all_aud_{mean,std}.npy   (28,)

Reconstructing clips. The release stores no per-clip pose stream, only units. Each clip's units are
read from its `unit/` folder in numeric file-name order and laid end to end: the stream is in
beat-normalised time (a beat every 8 frames, on frames 3, 11, 19, ...), which is also where the
clip's beats are recorded. The audio features are in real time and are cut to the stream's length;
the original release fed its models the same mismatch (units warped, music not), and beat
normalisation keeps it small for dance tempos near 112 bpm. `unitseq3/4` hold the same units in
overlapping groups and add nothing, and the unit lists only say which units the original loader
drew (it silently drew only zumba and ballet); every clip of all three styles found on disk is kept,
and the lists' line counts are recorded in dataset.json.

Splits are by video where a style has three or more videos (a video's clips share dancer and
song), otherwise by clip. Statistics are recomputed on the training split; the release's own
statistics, which its checkpoints were trained with, are kept in stats.npz as `original_*`.
The release has no music, so the dataset has no audio folder content (`has_audio: false`).
"""

from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path

import numpy as np

from common.errors import D2MError
from datamodules.config import FeatureConfig
from datamodules.dataset import Clip, check_out, dataset_writer
from datamodules.skeleton import NUM_JOINTS
from datamodules.splits import assign_group_splits
from datamodules.styles import KNOWN_STYLES as STYLES
from datamodules.units import UNIT_FRAMES, beat_frames_in_unit

FEATURE_DIM = 28
ORIGINAL_STATS = {
    "original_pose_mean": "all_onbeat_mean.npy",
    "original_pose_std": "all_onbeat_std.npy",
    "original_feature_mean": "all_aud_mean.npy",
    "original_feature_std": "all_aud_std.npy",
}


def _number(path: Path) -> tuple[int, str]:
    digits = re.findall(r"\d+", path.stem)
    return (int(digits[-1]) if digits else -1, path.name)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name)


def _load(path: Path, shape: tuple[int, ...], what: str) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as err:  # numpy raises several types for damaged files
        raise D2MError(f"cannot read {what} file {path}: {err}") from None
    if arr.ndim != len(shape) or any(w not in (-1, h) for w, h in zip(shape, arr.shape)):
        want = "(" + ", ".join("T" if w == -1 else str(w) for w in shape) + ")"
        raise D2MError(f"{what} file {path} has shape {arr.shape}, expected {want}")
    if not np.all(np.isfinite(arr)):
        raise D2MError(f"{what} file {path} contains NaN or infinite values")
    return arr.astype(np.float32)


def _release_root(src: Path) -> Path:
    if not src.is_dir():
        raise D2MError(f"original release folder not found: {src}")
    if not any((src / s).is_dir() for s in STYLES) and (src / "data").is_dir():
        return src / "data"
    return src


def _find_clips(root: Path) -> list[tuple[str, str, Path]]:
    """(style, video, clip folder) for every clip folder that holds units."""
    found = []
    for style in STYLES:
        for unit_dir in sorted((root / style).glob("*/*/unit")):
            if unit_dir.is_dir():
                found.append((style, unit_dir.parent.parent.name, unit_dir.parent))
    if not found:
        raise D2MError(f"no units found under {root}: expected <style>/<video>/<clip>/unit/*.npy "
                       f"with style in {', '.join(STYLES)}")
    return found


def _read_clip(clip_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    units = sorted(clip_dir.joinpath("unit").glob("*.npy"), key=_number)
    if not units:
        raise D2MError(f"no unit files in {clip_dir / 'unit'}")
    poses = np.concatenate([_load(u, (UNIT_FRAMES, NUM_JOINTS, 2), "unit") for u in units])
    aud = clip_dir / "aud" / f"c{clip_dir.name}_fps15.npy"
    if not aud.is_file():
        candidates = sorted(clip_dir.joinpath("aud").glob("*.npy"))
        if len(candidates) != 1:
            raise D2MError(f"audio features missing: {aud}")
        aud = candidates[0]
    feats = _load(aud, (-1, FEATURE_DIM), "audio feature")
    n = min(poses.shape[0], feats.shape[0])
    if n < UNIT_FRAMES:
        raise D2MError(f"clip {clip_dir}: only {n} frames once units and audio features are aligned "
                       f"({poses.shape[0]} pose frames, {feats.shape[0]} feature frames)")
    return poses[:n], feats[:n]


def _original_stats(root: Path) -> dict[str, np.ndarray]:
    stats = {}
    for key, name in ORIGINAL_STATS.items():
        path = root / "stats" / name
        if path.is_file():
            stats[key] = _load(path, (FEATURE_DIM,), "statistics")
    return stats


def _unit_list_counts(root: Path) -> dict[str, int]:
    counts = {}
    for path in sorted((root / "unitList").glob("*.txt")):
        counts[path.name] = sum(1 for line in path.read_text().splitlines() if line.strip())
    return counts


def import_d2m(src: str | Path, out: str | Path, force: bool = False) -> Path:
    """Convert the original release at `src` (the `data/` folder or its parent) to a dataset at `out`.

    `out` must be new or empty, or (with `force`) an imported dataset, and outside `src`.
    """
    check_out(out, "import-d2m", inputs=[src], force=force)
    root = _release_root(Path(src))
    found = _find_clips(root)
    styles = [s for s in STYLES if any(f[0] == s for f in found)]
    splits: dict[Path, str] = {}
    for s_index, style in enumerate(styles):
        mine = [f for f in found if f[0] == style]
        rng = np.random.default_rng([s_index, 2019])
        assigned = assign_group_splits([video for _, video, _ in mine], rng)
        splits.update({clip_dir: split for (_, _, clip_dir), split in zip(mine, assigned)})
    features = FeatureConfig()
    meta = {
        "feature_origin": "original release: Sphinx-style MFCC routine, not librosa; new music gets "
                          "librosa features with the same parameters",
        "unit_lists": _unit_list_counts(root),
        "time_base": "beat-normalised (units laid end to end)",
    }
    with dataset_writer(out, name="d2m", styles=styles, feature_spec=asdict(features),
                        feature_dim=FEATURE_DIM, sample_rate=features.sample_rate, fps=features.fps,
                        source="import-d2m", extra_meta=meta, extra_stats=_original_stats(root),
                        force=force, inputs=[src]) as writer:
        for style, video, clip_dir in found:
            poses, feats = _read_clip(clip_dir)
            first = int(beat_frames_in_unit()[0])
            clip = Clip(
                clip_id=_safe(f"{style}_{video}_{clip_dir.name}"), style=style, split=splits[clip_dir],
                poses=poses, features=feats,
                beats=np.arange(first, poses.shape[0], UNIT_FRAMES // 4, dtype=np.int64),
            )
            writer.add_clip(clip, source=str(clip_dir.relative_to(root)), columns={"video": video})
    return Path(out)
