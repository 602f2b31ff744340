"""`d2m data synth`: write the synthetic dataset in the canonical format.

The music is written as 16-bit WAV first and the features and beats are computed from that file by
the same `audio.py` path as for any other music, so re-extracting features from the stored audio
gives the stored features, and a model never trains on numbers that new music would not produce.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from common.errors import D2MError
from datamodules.audio import compute_features, feature_dim, feature_spec, load_audio, music_beats
from datamodules.config import FeatureConfig, SynthConfig
from datamodules.dataset import Clip, check_out, dataset_writer
from datamodules.splits import assign_splits
from datamodules.synth.body import FRAME_SIZE
from datamodules.synth.generate import generate_clip
from datamodules.synth.plan import DIFFICULTY, STYLES

MIN_CLIPS = 3  # one clip each for train, val and test


def build_synthetic(root: str | Path, synth: SynthConfig | None = None, features: FeatureConfig | None = None,
                    progress: Callable[[str], None] | None = None, force: bool = False) -> Path:
    """Generate `synth.clips_per_style` clips per style at `root`; returns the root.

    `root` must be new or empty, or (with `force`) hold a synthetic dataset, which is then replaced
    whole; any other content is refused before anything is generated (see `dataset.check_out`).
    """
    synth = synth or SynthConfig()
    features = features or FeatureConfig()
    if synth.clips_per_style < MIN_CLIPS:
        raise D2MError(f"synth.clips_per_style must be at least {MIN_CLIPS} (train, val, test), "
                       f"got {synth.clips_per_style}")
    if synth.difficulty not in DIFFICULTY:
        raise D2MError(f"unknown synth.difficulty '{synth.difficulty}'; known: {', '.join(DIFFICULTY)}")
    min_seconds = 2 * 32 / features.fps
    if synth.seconds < min_seconds:
        raise D2MError(f"synth.seconds must be at least {min_seconds:.2f} (two dance units), "
                       f"got {synth.seconds}")
    sr, fps = features.sample_rate, features.fps
    root = Path(root)
    check_out(root, "synth", force=force)
    meta = {"synth": asdict(synth), "frame_size": list(FRAME_SIZE)}
    with dataset_writer(root, name="synth", styles=STYLES, feature_spec=feature_spec(features),
                        feature_dim=feature_dim(features), sample_rate=sr, fps=fps, source="synth",
                        extra_meta=meta, force=force) as writer:
        for s, style in enumerate(STYLES):
            splits = assign_splits(synth.clips_per_style, np.random.default_rng([synth.seed, s, 10**6]))
            for index in range(synth.clips_per_style):
                clip_id = f"{style}_{index:03d}"
                made = generate_clip(style, index, synth.seconds, synth.difficulty, synth.seed, sr, fps)
                audio = writer.write_audio(clip_id, made.wave, sr)
                wave = load_audio(audio, sr)
                feats = compute_features(wave, sr, features)
                n = min(feats.shape[0], made.poses.shape[0])
                beats = music_beats(wave, sr, fps)
                extra = {"beats_true": made.beat_frames[made.beat_frames < n], "telltale": made.telltale[:n],
                         "tempo": np.float32(made.plan.tempo)}
                clip = Clip(clip_id=clip_id, style=style, split=splits[index], poses=made.poses[:n],
                            features=feats[:n], beats=beats[beats < n], extra=extra)
                writer.add_clip(clip, source="synth", columns={
                    "tempo": round(made.plan.tempo, 3), "meter": made.plan.meter,
                    "neutral_share": round(float(np.mean(made.telltale[:n] < 0.5)), 3),
                })
                if progress:
                    progress(clip_id)
    return root
