"""Typed configuration of the evaluation stage (DESIGN.md section 4)."""

from dataclasses import dataclass, field

from datamodules.motion import MIN_DEPTH_PX
from lightning_modules.config import OptimConfig


@dataclass
class DanceClassifierConfig:
    """The dance-style classifier behind style consistency and the classifier FID."""

    hidden: int = 64
    layers: int = 1
    feature_dim: int = 32
    window_units: int = 3  # dance length it reads, in units (3 x 32 frames)
    window_stride: int = 16  # frames between training windows cut from one clip; 0: non-overlapping
    center: bool = True  # judge the motion, not where the dancer stands: each window's centre moved to the mean
    inputs: str = "velocity"  # what the GRU reads: velocity (a statue reads as zeros), pose, or pose+velocity
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(lr=1e-3, betas=[0.9, 0.999], grad_clip=0.0, batch_size=64,
                                            max_epochs=30)
    )


@dataclass
class EvaluationConfig:
    samples_per_clip: int = 3  # generated dances per test clip (multimodality needs >= 2)
    max_clips: int = 0  # 0: every test clip
    fid_samples: int = 0  # windows per set in both FIDs; 0: the most the dataset gives (see evaluate.py)
    fid_stride: int = 8  # frames between the classifier-length windows cut for the FIDs
    bootstrap: int = 200  # resamples for the FID intervals and the noise floors
    beat_tolerance: int = 1  # beat F-measure window, frames either side (1 frame = 67 ms at 15 fps)
    beat_align_sigma: float = 0.75  # frames (3 frames at 60 fps = 0.05 s, kept in seconds at 15 fps)
    beat_min_depth: float = MIN_DEPTH_PX  # px/frame a speed minimum must dip to be a kinematic beat
    unit_frames: int = 32  # frames per generated unit, for seam_ratio
    seam_blend_frames: int = 0  # > 0: each generated unit carries on from the one before, blended over this many frames
    beat_warp: bool = False  # score a model's dances after moving their kinematic beats onto the tracked music beats
    controls: bool = True  # score the control dances (real, static, ...) with every reference row
    classifier: DanceClassifierConfig = field(default_factory=DanceClassifierConfig)
