"""`d2m data prepare`: your own keypoints and music into the canonical format.

Input layout. Under `keypoints_dir`, each clip is either a folder of OpenPose JSON files (one per
frame) or one .npy file (T, J, 2|3); its clip id is the folder name or file stem. The music of a
clip is the file under `audio_dir` (searched recursively) whose stem is the clip id, in any format
soundfile or audioread reads (wav, flac, ogg, mp3, ...).

Style labels come from a CSV (`clip_id`, `clip` or `name`, `style`, and optionally `split`) or, without
one, from the name of the folder holding the clip (`<keypoints_dir>/<style>/<clip>...`). Styles
must be among `styles` (default: zumba, ballet, hiphop); an unknown one is an error naming the clip
rather than a silently new class.

Timing. Keypoints are resampled to the feature frame rate (15 fps). Neither OpenPose JSON nor .npy
records a frame rate, so the source rate is `fps_in` (`--fps`) or, when not given, inferred once
for the whole folder (one camera, one rate): the usual rate (24, 25, 30, 60 ... fps) nearest to the
median of keypoint frames / music seconds over the clips, printed with the mismatch it implies.
Either way every clip's keypoints and music must agree in duration within
`PrepareConfig.duration_tolerance` seconds, else the clip is refused by name: a 3 s song beside a
30 s dance (or a truncated audio file) would otherwise play the dance at 10x speed. Within the
tolerance the longer side is cut to the shorter, and a cut of more than one frame is reported.

Every clip is checked before it is written, and everything is written into a temporary folder
that replaces `out` only at the end, so a bad file anywhere leaves no partial dataset.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common.errors import D2MError
from datamodules.audio import compute_features, feature_dim, feature_spec, load_audio, music_beats
from datamodules.config import FeatureConfig
from datamodules.dataset import SPLITS, Clip, check_out, dataset_writer
from datamodules.keypoints import read_npy, read_openpose_folder, resample_time, to_skeleton
from datamodules.splits import assign_splits
from datamodules.styles import KNOWN_STYLES
from datamodules.units import UNIT_FRAMES

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".aac", ".aiff", ".aif", ".au")
CONFIDENCE_THRESHOLD = 0.1
USUAL_RATES = (15.0, 24.0, 25.0, 29.97, 30.0, 50.0, 59.94, 60.0)  # camera and pose-tool frame rates
ID_COLUMNS = ("clip_id", "clip", "name")


@dataclass
class PrepareConfig:
    """How strictly keypoints and music must line up."""

    duration_tolerance: float = 1.0  # seconds by which keypoints and music may differ; more is refused


def _stderr(line: str) -> None:
    print(f"d2m: {line}", file=sys.stderr, flush=True)


@dataclass
class _Source:
    clip_id: str
    path: Path  # the .npy file or the JSON folder
    folder_style: str | None  # the name of the folder above the clip, if any


def _discover(keypoints_dir: Path) -> list[_Source]:
    if not keypoints_dir.is_dir():
        raise D2MError(f"keypoints folder not found: {keypoints_dir}")
    sources: list[_Source] = []
    for npy in sorted(keypoints_dir.rglob("*.npy")):
        sources.append(_Source(npy.stem, npy, _folder_style(npy.parent, keypoints_dir)))
    json_dirs = sorted({p.parent for p in keypoints_dir.rglob("*.json")})
    for folder in json_dirs:
        sources.append(_Source(folder.name, folder, _folder_style(folder.parent, keypoints_dir)))
    if not sources:
        raise D2MError(f"no keypoints found in {keypoints_dir}: expected .npy files or folders of "
                       "OpenPose JSON")
    seen: dict[str, Path] = {}
    for s in sources:
        if s.clip_id in seen:
            raise D2MError(f"two clips named '{s.clip_id}': {seen[s.clip_id]} and {s.path}")
        seen[s.clip_id] = s.path
    return sources


def _folder_style(folder: Path, top: Path) -> str | None:
    return None if folder.resolve() == top.resolve() else folder.name


def _labels(labels_csv: Path | None) -> dict[str, tuple[str, str | None]]:
    if labels_csv is None:
        return {}
    if not labels_csv.is_file():
        raise D2MError(f"labels file not found: {labels_csv}")
    try:
        table = pd.read_csv(labels_csv, dtype=str, keep_default_na=False)
    except Exception as err:  # pandas raises several parser errors
        raise D2MError(f"cannot read labels file {labels_csv}: {err}") from None
    table.columns = [str(c).strip() for c in table.columns]
    id_col = next((c for c in ID_COLUMNS if c in table.columns), None)
    if id_col is None or "style" not in table.columns:
        raise D2MError(f"labels file {labels_csv} needs columns clip_id (or clip, or name) and style; "
                       f"it has {', '.join(table.columns)}")
    out = {}
    for _, row in table.iterrows():
        split = row["split"].strip() if "split" in table.columns and row["split"].strip() else None
        if split is not None and split not in SPLITS:
            raise D2MError(f"labels file {labels_csv}: clip '{row[id_col]}' has unknown split '{split}'; "
                           f"known: {', '.join(SPLITS)}")
        out[row[id_col].strip()] = (row["style"].strip(), split)
    return out


def _audio_for(clip_id: str, audio_dir: Path, index: dict[str, Path]) -> Path:
    if clip_id not in index:
        raise D2MError(f"no audio for clip '{clip_id}' in {audio_dir} "
                       f"(looked for {clip_id}.wav/.flac/.ogg/.mp3 ...)")
    return index[clip_id]


def _audio_index(audio_dir: Path) -> dict[str, Path]:
    if not audio_dir.is_dir():
        raise D2MError(f"audio folder not found: {audio_dir}")
    index: dict[str, Path] = {}
    for path in sorted(audio_dir.rglob("*")):
        if path.is_file() and path.suffix.lower() in AUDIO_EXTENSIONS:
            index.setdefault(path.stem, path)
    return index


def prepare_dataset(keypoints_dir: str | Path, audio_dir: str | Path, out: str | Path,
                    labels_csv: str | Path | None = None, fps_in: float | None = None,
                    styles: Sequence[str] | None = None, features: FeatureConfig | None = None,
                    seed: int = 0, config: PrepareConfig | None = None, force: bool = False,
                    say: Callable[[str], None] = _stderr) -> Path:
    """Build a canonical dataset at `out` from keypoints and music; returns `out`.

    `out` must be new or empty, or (with `force`) a prepared dataset; never an input or inside one.
    Notes and warnings (inferred frame rates, cut clips) go to `say`.
    """
    features = features or FeatureConfig()
    config = config or PrepareConfig()
    allowed = list(styles or KNOWN_STYLES)
    keypoints_dir, audio_dir = Path(keypoints_dir), Path(audio_dir)
    inputs = [keypoints_dir, audio_dir] + ([Path(labels_csv)] if labels_csv is not None else [])
    check_out(out, "prepare", inputs=inputs, force=force)
    if config.duration_tolerance < 0:
        raise D2MError(f"duration tolerance must be >= 0 seconds, got {config.duration_tolerance}")
    sources = _discover(keypoints_dir)
    labels = _labels(Path(labels_csv) if labels_csv is not None else None)
    audio = _audio_index(audio_dir)
    if fps_in is not None and fps_in <= 0:
        raise D2MError(f"fps_in must be positive, got {fps_in}")

    plan = []  # (source, style, split or None): every label checked before any heavy work
    for src in sources:
        if labels_csv is not None:
            if src.clip_id not in labels:
                raise D2MError(f"clip '{src.clip_id}' ({src.path}) is not in the labels file {labels_csv}")
            style, split = labels[src.clip_id]
        elif src.folder_style is not None:
            style, split = src.folder_style, None
        else:
            raise D2MError(f"no style for {src.path}: put clips in a folder named after their style, "
                           "or pass a labels CSV")
        if style not in allowed:
            raise D2MError(f"unknown style '{style}' for clip '{src.clip_id}' ({src.path}); "
                           f"known: {', '.join(allowed)}")
        plan.append((src, style, split, _audio_for(src.clip_id, audio_dir, audio)))

    present = [s for s in allowed if any(p[1] == s for p in plan)]
    auto = {}
    for s_index, style in enumerate(present):
        mine = [p[0].clip_id for p in plan if p[1] == style and p[2] is None]
        auto.update(zip(mine, assign_splits(len(mine), np.random.default_rng([seed, s_index]))))

    sr, fps = features.sample_rate, features.fps
    with dataset_writer(out, name="prepared", styles=present, feature_spec=feature_spec(features),
                        feature_dim=feature_dim(features), sample_rate=sr, fps=fps,
                        source="prepare", force=force, inputs=inputs) as writer:
        rate = fps_in if fps_in is not None else _inferred_rate([(p[0], p[3]) for p in plan], say)
        cut: list[tuple[str, float]] = []
        for src, style, split, audio_file in plan:
            wave = load_audio(audio_file, sr)
            stored = writer.write_audio(src.clip_id, wave, sr)
            wave = load_audio(stored, sr)  # features from the stored file, as re-extraction would see it
            feats = compute_features(wave, sr, features)
            pos, conf = _read_keypoints(src)
            _check_durations(src, pos.shape[0], wave.size / sr, audio_file, rate, fps_in is not None,
                             config.duration_tolerance)
            poses, conf = resample_time(pos, rate, fps), resample_time(conf, rate, fps)
            n = min(poses.shape[0], feats.shape[0])
            if max(poses.shape[0], feats.shape[0]) - n > 1:
                cut.append((src.clip_id, (max(poses.shape[0], feats.shape[0]) - n) / fps))
            if n < UNIT_FRAMES:
                raise D2MError(f"clip '{src.clip_id}' ({src.path}): only {n} frames at {fps} fps once "
                               f"keypoints and music are aligned; at least {UNIT_FRAMES} (one dance unit) "
                               "are needed")
            beats = music_beats(wave, sr, fps)
            clip = Clip(clip_id=src.clip_id, style=style, split=split or auto[src.clip_id],
                        poses=poses[:n].astype(np.float32), features=feats[:n], beats=beats[beats < n],
                        confidence=conf[:n].astype(np.float32))
            writer.add_clip(clip, source=str(src.path.relative_to(keypoints_dir)),
                            columns={"audio_source": str(audio_file), "keypoint_fps": rate})
        if cut:
            listed = ", ".join(f"'{c}' ({s:.2f} s)" for c, s in cut[:5]) + (" ..." if len(cut) > 5 else "")
            say(f"warning: keypoints and music differ by more than one frame in {len(cut)} clip(s), the longer "
                f"side cut to the shorter: {listed}")
    return Path(out)


def _read_keypoints(src: _Source) -> tuple[np.ndarray, np.ndarray]:
    pos, conf = read_npy(src.path) if src.path.suffix == ".npy" else read_openpose_folder(src.path)
    if pos.shape[0] < 2:
        raise D2MError(f"keypoints {src.path}: {pos.shape[0]} frame(s); a dance needs many")
    return to_skeleton(pos, conf, str(src.path), CONFIDENCE_THRESHOLD)


def _keypoint_frames(src: _Source) -> int | None:
    """Frames in a clip's keypoints without parsing them (None when unreadable: the full read says why)."""
    if src.path.suffix != ".npy":
        return len(list(src.path.glob("*.json")))
    try:
        return int(np.load(src.path, mmap_mode="r", allow_pickle=False).shape[0])
    except Exception:  # reported with its reason when the clip is read
        return None


def _music_seconds(path: Path) -> float | None:
    import warnings

    import librosa

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # librosa warns before falling back to audioread
            return float(librosa.get_duration(path=str(path)))
    except Exception:  # reported with its reason when the music is loaded
        return None


def _inferred_rate(clips: list[tuple[_Source, Path]], say: Callable[[str], None]) -> float:
    """One frame rate for every clip: the usual rate nearest the median of frames / music seconds; printed."""
    found = []
    for src, audio_file in clips:
        frames, seconds = _keypoint_frames(src), _music_seconds(audio_file)
        if frames and seconds:
            found.append((src.clip_id, frames, seconds))
    if not found:
        return 30.0  # every clip is unreadable; the first one read reports why
    middle = float(np.median([f / s for _, f, s in found]))
    rate = min(USUAL_RATES, key=lambda r: abs(math.log(r / middle)))
    worst = max(found, key=lambda c: abs(c[1] / rate - c[2]))
    say(f"note: no --fps given: keypoints read at {rate:g} fps, the usual rate nearest the clips' median keypoint "
        f"frames / music seconds ({middle:.2f}); largest keypoints-music mismatch at that rate "
        f"{worst[1] / rate - worst[2]:+.2f} s (clip '{worst[0]}'); pass --fps if the keypoints were recorded at "
        "another rate")
    return rate


def _check_durations(src: _Source, frames: int, seconds: float, audio_file: Path, rate: float, given: bool,
                     tolerance: float) -> None:
    """A D2MError naming the clip when keypoints and music differ by more than the tolerance at `rate`."""
    mismatch = frames / rate - seconds
    if abs(mismatch) > tolerance:
        how = f"--fps {rate:g}" if given else f"{rate:g} fps (inferred from all clips, no --fps given)"
        hint = "check --fps and both files" if given else "pass --fps with the keypoints' real frame rate, or " \
            "check that the music file is complete"
        raise D2MError(
            f"clip '{src.clip_id}': keypoints {src.path} last {frames / rate:.2f} s ({frames} frames at {how}) but "
            f"the music {audio_file} lasts {seconds:.2f} s; they differ by {abs(mismatch):.2f} s, more than the "
            f"tolerance of {tolerance:g} s ({hint})")
