"""Typed configuration of the data block: where the dataset lives, how it is cut, which features.

The numbers are the original release's (DESIGN.md section 2); presets and YAML files override them.
"""

from dataclasses import dataclass, field

from common.errors import D2MError


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
    # training units only: every bone made 1 +- this times as long (one factor per bone and unit), a
    # dancer of other proportions doing the same moves (0: off)
    bone_jitter: float = 0.0
    # training units only: the probability that a unit is mirrored, left and right swapped (0: off)
    mirror: float = 0.0
    # training sequences of the composition stage: the probability that one is mirrored (0: off)
    sequence_mirror: float = 0.0
    num_workers: int = 0
    synth: SynthConfig = field(default_factory=SynthConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)


# The augmentations of training units and sequences (torch_data.UnitPairDataset, SequenceDataset)
# and the values each may take: a jitter of 1 or more could shrink a body to nothing; a mirror's is
# a probability.
AUGMENTATIONS = {"scale_jitter": "[0, 1)", "bone_jitter": "[0, 1)", "mirror": "[0, 1]", "sequence_mirror": "[0, 1]"}


def check_augmentations(**values: float) -> None:
    """Refuse an augmentation outside its range, naming its config key."""
    for key, value in values.items():
        top_ok = AUGMENTATIONS[key].endswith("]")
        if not (0.0 <= float(value) < 1.0 or (top_ok and float(value) == 1.0)):
            raise D2MError(f"bad value for config key 'data.{key}': {value}; must be in {AUGMENTATIONS[key]}")
