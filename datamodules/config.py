"""Typed configuration of the data block: where the dataset lives, how it is cut, which features.

The numbers are the original release's (DESIGN.md section 2); presets and YAML files override them.
"""

from dataclasses import dataclass, field


@dataclass
class FeatureConfig:
    """Per-frame music features at the pose frame rate; recorded in dataset.json with the data."""

    kind: str = "mfcc_energy_delta"  # 13 MFCCs + log-energy, and their first-order deltas: 28 numbers
    backend: str = "librosa"  # librosa | torchaudio (where it imports)
    sample_rate: int = 22050
    fps: int = 15
    n_mfcc: int = 13
    n_mels: int = 40
    fmin: float = 133.33
    fmax: float = 6855.5
    preemphasis: float = 0.97
    window_seconds: float = 0.0667
    n_fft: int = 512  # raised to the next power of two when the window is longer (see audio.py)
    deltas: bool = True
    delta_width: int = 5  # frames in the regression window of the deltas (+-2, as Sphinx and HTK)


@dataclass
class SynthConfig:
    """The built-in procedural music + dance dataset (`d2m data synth`)."""

    clips_per_style: int = 12
    seconds: float = 30.0
    difficulty: str = "medium"  # easy | medium | hard: how often a style's tell-tale elements drop out
    seed: int = 0


@dataclass
class DataConfig:
    root: str = "data/synth"
    source: str = "synth"  # synth: built on demand at `root`; canonical: an existing dataset at `root`
    styles: list[str] = field(default_factory=list)  # empty: every style of the dataset
    unit_mode: str = "fixed"  # fixed 32-frame windows | beat_normalized (the original's)
    unit_frames: int = 32
    unit_stride: int = 8  # frames between the starts of consecutive fixed windows
    window_stride: int = 5  # frames between the starts of consecutive style-extractor windows
    beat_min_gap: int = 4  # beat_normalized: beat intervals (frames) outside [min, max] are not cut
    beat_max_gap: int = 16
    sequence_units: int = 3  # units per composition sequence (L)
    jitter_x: float = 50.0  # px, uniform +- range of the decomposition pair offset
    jitter_y: float = 20.0
    # training units only: both copies scaled by one factor drawn uniformly from 1 +- this, about the
    # unit's first-pose centre, so the VAE meets more body sizes than the dataset's few dancers (0: off)
    scale_jitter: float = 0.0
    num_workers: int = 0
    synth: SynthConfig = field(default_factory=SynthConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
