"""Typed configuration of the three models: sizes, optimisation and the pluggable loss terms.

Defaults are the paper's sizes (DESIGN.md section 3); the `small` and `tiny` presets shrink them.
"""

from dataclasses import dataclass, field


@dataclass
class LossTermConfig:
    """One loss term: on or off, its weight, and an optional sigmoid warm-up of that weight.

    With `warmup_slope > 0` the weight at iteration `it` is
    `weight / (1 + exp(-warmup_slope * (it - warmup_center)))` (the original's KL ramp).
    """

    enabled: bool = True
    weight: float = 1.0
    warmup_center: float = 0.0
    warmup_slope: float = 0.0


def term(weight: float = 1.0, enabled: bool = True, **kw) -> LossTermConfig:
    return LossTermConfig(enabled=enabled, weight=weight, **kw)


@dataclass
class OptimConfig:
    lr: float = 2e-4
    betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    weight_decay: float = 0.0
    grad_clip: float = 0.5  # gradient-norm clipping; 0 disables
    batch_size: int = 64
    max_epochs: int = 100
    max_steps: int = -1  # > 0 stops earlier
    check_val_every_n_epoch: int = 1
    val_every_n_steps: int = 0  # with max_steps > 0: validate every N steps (0: once, at max_steps)
    early_stopping_patience: int = 0  # epochs without validation improvement; 0 disables
    lr_schedule: str = "constant"  # constant | cosine (to lr * lr_final_scale at max_steps); schedules.py
    lr_warmup_steps: int = 0  # linear warm-up of the learning rate over the first N steps
    lr_final_scale: float = 0.0  # cosine: the rate at max_steps, as a fraction of lr


@dataclass
class StyleExtractorConfig:
    arch: str = "original"  # original | improved
    hidden: int = 30
    layers: int = 1
    style_dim: int = 30  # the style feature handed to the composition GAN
    head_hidden: int = 30
    dropout: float = 0.0  # improved: the two dropout layers of the head (and between GRU layers)
    window: int = 30  # audio frames per training window (30 = 2 s at 15 fps)
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(lr=1e-3, betas=[0.9, 0.999], grad_clip=0.0, batch_size=64,
                                            max_epochs=100, early_stopping_patience=10)
    )


def _decomposition_losses() -> dict[str, LossTermConfig]:
    return {
        "pose_reconstruction": term(1.0),
        "cross_reconstruction": term(1.0),
        "movement_distance": term(1.0),
        "kl": term(0.01, warmup_center=15000.0, warmup_slope=0.0005),
        "initial_pose_reconstruction": term(1.0),
    }


@dataclass
class DecompositionConfig:
    init_dim: int = 10  # z_init
    init_hidden: int = 64
    movement_dim: int = 512  # z_movement
    hidden: int = 1024  # movement encoder and pose decoder GRU width
    initial_pose_frames: int = 4  # random frames per unit through the initial-pose VAE
    fast_recurrence: bool = True  # project the constant decoder input once, not at every step
    fused_pairs: bool = True  # encode and decode the two jittered copies as one batch
    losses: dict[str, LossTermConfig] = field(default_factory=_decomposition_losses)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=2e-4, grad_clip=0.5, batch_size=64))


def _composition_losses() -> dict[str, LossTermConfig]:
    return {
        "kl": term(0.01),
        "dance_code_alignment": term(1.0),
        "movement_alignment": term(1.0),
        "style_alignment": term(1.0),
        "movement_reconstruction": term(1.0),
        "pose_reconstruction": term(10.0),
    }


@dataclass
class CompositionConfig:
    dance_dim: int = 512  # z_dance
    hidden: int = 1024  # dance encoder and decoder GRU width
    noise_dim: int = 30
    music_hidden: list[int] = field(default_factory=lambda: [64, 128])
    disc_hidden: list[int] = field(default_factory=lambda: [1024, 512, 256, 30])
    audio_disc_hidden: int = 30
    regressor_hidden: list[int] = field(default_factory=lambda: [512, 256, 128])
    finetune_lr_scale: float = 0.1  # pose decoder and movement encoder learn at this fraction of lr
    style_frames: int = 0  # audio frames the style feature reads: 0 = all the music under the sequence;
    #                        30 = the original release's first 2 s (set by d2m import-original)
    fast_recurrence: bool = True
    losses: dict[str, LossTermConfig] = field(default_factory=_composition_losses)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=2e-4, grad_clip=0.5, batch_size=64))


def typed(schema: type, config: dict | None, block: str):
    """A config block (plain dict, as saved in checkpoints) as its typed dataclass.

    A bad key or value is a D2MError naming the block and key, so a module built from a hand-written
    dict fails as clearly as one built from a YAML file.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from datamodules.errors import D2MError

    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), config or {}))
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "?"
        raise D2MError(f"{block}.{key}: {str(err).splitlines()[0]}") from None
