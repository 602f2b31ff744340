"""One synthetic clip, start to end: plan, music, dance, all from the clip's own random generator.

A clip's generator is seeded by (seed, style, index), so a clip does not change when the number of
clips per style does, and any clip can be regenerated alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datamodules.synth.body import Body
from datamodules.synth.dance import choreograph
from datamodules.synth.music import render_music
from datamodules.synth.plan import STYLES, MusicPlan, plan_clip


@dataclass
class SynthClip:
    style: str
    index: int
    plan: MusicPlan
    wave: np.ndarray  # float32 mono at the sample rate it was made for
    poses: np.ndarray  # (T, 14, 2) float32 pixels
    body: Body
    telltale: np.ndarray  # (T,) share of the style's tell-tale layers playing at each frame
    beat_frames: np.ndarray  # the beats the music was made with, int64 frame indices


def clip_rng(seed: int, style: str, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), STYLES.index(style), int(index)])


def generate_clip(style: str, index: int, seconds: float, difficulty: str, seed: int, sample_rate: int,
                  fps: int) -> SynthClip:
    rng = clip_rng(seed, style, index)
    plan = plan_clip(style, seconds, difficulty, rng)
    wave, curves = render_music(plan, sample_rate, rng)
    n_frames = int(round(seconds * fps))
    poses, body = choreograph(plan, n_frames, fps, rng)
    frame_samples = np.minimum((np.arange(n_frames) * sample_rate) // fps, wave.size - 1)
    telltale = np.mean([c[frame_samples] for c in curves.values()], axis=0).astype(np.float32)
    beats = plan.beats_in_clip()
    beat_frames = np.unique(np.round(beats * fps).astype(np.int64))
    return SynthClip(style, index, plan, wave, poses, body, telltale, beat_frames[beat_frames < n_frames])
