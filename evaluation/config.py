"""Typed configuration of the evaluation stage (DESIGN.md section 4)."""

from dataclasses import dataclass, field

from lightning_modules.config import OptimConfig


@dataclass
class DanceClassifierConfig:
    """The dance-style classifier whose features the FID, diversity and multimodality use."""

    hidden: int = 64
    layers: int = 1
    feature_dim: int = 32
    window_units: int = 3  # dance length it reads, in units (3 x 32 frames)
    window_stride: int = 16  # frames between training windows cut from one clip; 0: non-overlapping
    center: bool = True  # judge the motion, not where the dancer stands: each window's centre moved to the mean
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(lr=1e-3, betas=[0.9, 0.999], grad_clip=0.0, batch_size=64,
                                            max_epochs=30)
    )


@dataclass
class EvaluationConfig:
    samples_per_clip: int = 3  # generated dances per test clip (multimodality needs >= 2)
    max_clips: int = 0  # 0: every test clip
    beat_tolerance: int = 2  # frames between a kinematic and a music beat that still count as a hit
    beat_align_sigma: float = 0.75  # frames (3 frames at 60 fps = 0.05 s, kept in seconds at 15 fps)
    motion_smoothing: float = 1.25  # frames (5 frames at 60 fps)
    classifier: DanceClassifierConfig = field(default_factory=DanceClassifierConfig)
