"""`d2m generate`: dances for a user's music from a finished run's composition checkpoint.

The checkpoint alone suffices: it carries the style extractor, the decomposition networks, the
pose and feature statistics and the dataset's feature spec, so new music gets exactly the features
the model was trained on. Outputs, each written atomically:

- keypoints in pixels, `<out>.npy` (samples, T, 14, 2), and the same with metadata in `<out>.json`;
  a run imported without data statistics (`d2m import-original` without `--data`) has none to undo
  the normalisation with, so its keypoints stay in normalised units: the console says so and the
  JSON's `units` names them;
- for `.mp4` / `.gif` targets, one stick-figure video per sample (the MP4 carries the music),
  suffixed `_0`, `_1`, ... when there are several samples.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

from common.atomic import write_json, write_with
from common.errors import D2MError
from datamodules.config import FeatureConfig
from datamodules.skeleton import JOINT_NAMES
from experiments.rundir import load_run

__all__ = ["NORMALISED_UNITS", "OUTPUT_SUFFIXES", "PIXEL_UNITS", "feature_config", "generate_from_run",
           "keypoint_units", "sample_paths"]

OUTPUT_SUFFIXES = (".mp4", ".gif", ".npy")
PIXEL_UNITS = "pixels (x right, y down)"
NORMALISED_UNITS = "normalised (no data statistics: pose mean 0, std 1; x right, y down)"


def keypoint_units(pose_mean: torch.Tensor, pose_std: torch.Tensor) -> str:
    """Pixels, unless the statistics are the identity that an import without a dataset leaves."""
    identity = bool(torch.all(pose_mean == 0)) and bool(torch.all(pose_std == 1))
    return NORMALISED_UNITS if identity else PIXEL_UNITS


def sample_paths(out_path: str | Path, samples: int) -> list[Path]:
    """One video per sample: the target itself for one sample, `<stem>_<i><suffix>` for several."""
    out = Path(out_path)
    if samples == 1:
        return [out]
    return [out.with_name(f"{out.stem}_{i}{out.suffix}") for i in range(samples)]


def feature_config(spec: dict | None) -> FeatureConfig:
    """The dataset's feature spec (as recorded in the checkpoint) as a `FeatureConfig`."""
    known = {f.name for f in dataclasses.fields(FeatureConfig)}
    return FeatureConfig(**{k: v for k, v in (spec or {}).items() if k in known})


def generate_from_run(
    run_dir: str | Path,
    audio_path: str | Path,
    out_path: str | Path,
    samples: int = 1,
    seed: int = 0,
    beat_warp: bool = False,
    seam_blend: int = 0,
    progress: bool = True,
) -> list[Path]:
    """Generate `samples` dances for the music at `audio_path`; returns the paths written.

    The list starts with what was asked for (the videos, or the `.npy` for a `.npy` target), then the
    keypoint files. Bad audio (missing, empty, silent, unreadable) is a `D2MError` from `load_audio`.
    """
    from datamodules.audio import compute_features, load_audio, music_beats
    from evaluation.generation import generate_dance, warp_to_beats
    from lightning_modules.composition_module import CompositionModule

    out = Path(out_path)
    if out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise D2MError(f"--out {out}: unsupported file type '{out.suffix}'; "
                       f"use one of {', '.join(OUTPUT_SUFFIXES)}")
    if samples < 1:
        raise D2MError(f"--samples must be >= 1, got {samples}")
    audio = Path(audio_path)
    if not audio.is_file():
        raise D2MError(f"audio file not found: {audio}")

    checkpoint = load_run(run_dir).checkpoint("composition")
    module = CompositionModule.load_from_checkpoint(str(checkpoint), map_location="cpu", weights_only=True)
    module.eval()
    model = module.model
    spec = feature_config(module.hparams.get("feature_spec"))
    units = keypoint_units(model.pose_mean, model.pose_std)
    if units == NORMALISED_UNITS:
        print(f"d2m generate: {run_dir} has no data statistics (imported without --data), so the keypoints are in "
              "normalised units, not pixels; import again with --data DATASET to get pixels", file=sys.stderr)

    wave = load_audio(audio, spec.sample_rate)
    features = np.asarray(compute_features(wave, spec.sample_rate, spec), dtype=np.float32)
    if features.ndim != 2 or features.shape[0] == 0:
        raise D2MError(f"{audio}: no audio features could be computed (is the file too short?)")
    normalised = (torch.from_numpy(features) - model.feature_mean) / model.feature_std

    generator = torch.Generator().manual_seed(int(seed))
    dances = generate_dance(model, normalised, samples=samples, generator=generator, blend_frames=seam_blend,
                            progress=progress)
    pixels = (dances * model.pose_std + model.pose_mean).numpy().astype(np.float32)
    if beat_warp:  # in pixels: the kinematic-beat detector's depth is in pixels per frame
        beats = music_beats(np.asarray(wave), spec.sample_rate, spec.fps)
        pixels = np.stack([warp_to_beats(d, beats, unit_frames=model.unit_frames) for d in pixels])
    keypoints = pixels.reshape(samples, pixels.shape[1], -1, 2)

    npy = out if out.suffix.lower() == ".npy" else out.with_suffix(".npy")
    meta = npy.with_suffix(".json")
    written: list[Path] = []
    if out.suffix.lower() != ".npy":
        from evaluation.render import render_dance

        for path, dance in zip(sample_paths(out, samples), keypoints):
            sound = audio if path.suffix.lower() == ".mp4" else None
            render_dance(dance, path, audio_path=sound, fps=spec.fps)
            written.append(path)
    write_with(npy, lambda tmp: _save_npy(tmp, keypoints))
    write_json(meta, {
        "fps": spec.fps,
        "frames": int(keypoints.shape[1]),
        "samples": samples,
        "seed": int(seed),
        "beat_warp": bool(beat_warp),
        "seam_blend_frames": int(seam_blend),
        "audio": str(audio),
        "run": str(run_dir),
        "checkpoint": str(checkpoint),
        "joints": list(JOINT_NAMES),
        "units": units,
        "keypoints": np.round(keypoints, 2).tolist(),
    })
    return [*written, npy, meta]


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file handle, so numpy does not append a second `.npy`
        np.save(f, array)
