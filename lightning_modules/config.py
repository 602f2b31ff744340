"""Typed configuration of the three models: sizes, optimisation, the objective and the loss terms.

Defaults are the original release's recipe (DESIGN.md section 3): its sizes, its optimiser, its
batch and epochs, and its objective term by term. Where d2m-lab offers another formulation of a part
of the objective (for example the KL averaged over code dimensions) it is a named switch here whose
default is the original's; the `small` and `tiny` presets state each departure as an override.
"""

from dataclasses import dataclass, field

from omegaconf import II, OmegaConf

# Reductions and formulations of the objective (the switches' allowed values; the first is the original's).
KL_REDUCTIONS = ("sum", "mean")  # sum: over code dimensions, then mean over the batch; mean: over both
PAIR_REDUCTIONS = ("sum", "mean")  # how the two jittered copies' terms combine
MOVEMENT_DISTANCE_CODES = ("sampled", "mean")  # which codes of the two copies the movement distance compares
CLIP_MODES = ("per_network", "joint")  # one gradient norm per trained network, or one over all of them
STYLE_STEPS = ("separate", "joint")  # the style ("info") loss in its own step, or folded into the generator's


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
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # Adam's defaults, as in the original
    weight_decay: float = 0.0
    grad_clip: float = 0.5  # gradient-norm clipping; 0 disables
    clip_mode: str = "per_network"  # per_network: clip_grad_norm_(net, grad_clip) per trained network | joint
    batch_size: int = 256
    max_epochs: int = 100
    max_steps: int = -1  # > 0 stops earlier
    check_val_every_n_epoch: int = 1
    val_every_n_steps: int = 0  # with max_steps > 0: validate every N steps (0: once, at max_steps)
    early_stopping_patience: int = 0  # epochs without validation improvement; 0 disables
    lr_schedule: str = "constant"  # constant | cosine (to lr * lr_final_scale at max_steps); schedules.py
    lr_warmup_steps: int = 0  # linear warm-up of the learning rate over the first N steps
    lr_final_scale: float = 0.0  # cosine: the rate at max_steps, as a fraction of lr
    ema_decay: float = 0.0  # exponential moving average of the weights (0 disables); experiments/averaging.py


# The sizes each style-extractor architecture takes unless the config gives them (DESIGN.md section 3).
STYLE_ARCH_SIZES: dict[str, dict[str, float]] = {
    "original": {"hidden": 30, "layers": 1, "dropout": 0.0, "window": 30},
    "improved": {"hidden": 512, "layers": 2, "dropout": 0.3, "window": 150},
}


def _style_size(key: str, arch: str):
    sizes = STYLE_ARCH_SIZES.get(str(arch))
    if sizes is None:  # an unknown architecture is reported by the config validation and the network
        sizes = STYLE_ARCH_SIZES["original"]
    return sizes[key]


if not OmegaConf.has_resolver("d2m_style"):
    OmegaConf.register_resolver("d2m_style", _style_size)


def _arch_default(key: str) -> str:
    """A size that follows `arch` (through an interpolation the config view prints resolved)."""
    return II(f"d2m_style:{key},${{.arch}}")


@dataclass
class StyleExtractorConfig:
    """The style extractor; `hidden`, `layers`, `dropout` and `window` default to the `arch`'s sizes.

    original: 30 wide, 1 layer, no dropout, 30-frame (2 s) windows; improved: 512 wide, 2 layers,
    dropout 0.3, 150-frame (10 s) windows, with a Linear(hidden -> style_dim) projection. The sizes
    resolve through OmegaConf (`typed`, `plain`, the experiment config), not on a bare instance.
    """

    arch: str = "original"  # original | improved
    hidden: int = _arch_default("hidden")
    layers: int = _arch_default("layers")
    style_dim: int = 30  # the style feature handed to the composition GAN
    head_hidden: int = 30
    dropout: float = _arch_default("dropout")  # improved: the head's two dropout layers (and between GRU layers)
    window: int = _arch_default("window")  # audio frames per training window (30 = 2 s at 15 fps)
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
        "velocity_reconstruction": term(10.0, enabled=False),  # not the paper's: d2m-lab's, for `small`
    }


@dataclass
class DecompositionConfig:
    init_dim: int = 10  # z_init
    init_hidden: int = 64
    movement_dim: int = 512  # z_movement
    hidden: int = 1024  # movement encoder and pose decoder GRU width
    initial_pose_frames: int = 4  # random frames per unit through the initial-pose VAE
    kl_reduction: str = "sum"  # sum: -0.5 * sum over code dims, mean over the batch (original) | mean
    pair_reduction: str = "sum"  # the two jittered copies' pose, cross and KL terms: sum (original) | mean
    movement_distance_codes: str = "sampled"  # L1 between the copies' sampled codes (original) | mean
    fast_recurrence: bool = True  # project the constant decoder input once, not at every step
    fused_pairs: bool = True  # encode and decode the two jittered copies as one batch
    losses: dict[str, LossTermConfig] = field(default_factory=_decomposition_losses)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=2e-4, grad_clip=0.5, max_epochs=1000))


def _composition_losses() -> dict[str, LossTermConfig]:
    return {
        "kl": term(0.01),  # the dance path: real z_dance and the movement codes decoded from it
        "music_kl": term(0.01, enabled=False),  # the music path's KL: logged, not optimised, in the original
        "dance_code_alignment": term(1.0),
        "movement_alignment": term(1.0),
        "style_alignment": term(1.0),
        "movement_reconstruction": term(1.0),
        "pose_reconstruction": term(10.0),
        "dance_code_mmd": term(10.0, enabled=False),  # not the paper's: d2m-lab's, for `small`
        "movement_code_mmd": term(10.0, enabled=False),  # not the paper's: d2m-lab's (docs/training.md 3f)
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
    finetune_lr_scale: float = 0.1  # the pose decoder (and a fine-tuned movement encoder) learn at lr * this
    finetune_movement_encoder: bool = False  # False: frozen, its codes detached (original) | True: at lr * scale
    style_step: str = "separate"  # separate: the style loss in its own Adam step on the dance encoder, music
    #                               encoder, regressor and pose decoder (original) | joint: its encoder part in
    #                               the generator step, the regressor learning on detached codes
    kl_reduction: str = "sum"  # as decomposition.kl_reduction
    style_frames: int = 30  # audio frames the style feature reads, in training and generation (30 = the
    #                         original's first 2 s); 0 = all the music under the sequence
    fast_recurrence: bool = True
    code_mmd_style_spread: float = 0.0  # dance_code_mmd: 0 matches the codes alone | > 0: the style feature
    #                                     joined to each code at that many times the codes' spread (by style)
    losses: dict[str, LossTermConfig] = field(default_factory=_composition_losses)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=2e-4, grad_clip=0.5, max_epochs=1500))


def plain(x):
    """A config block or a statistic as plain Python values (dicts, lists, numbers, strings).

    LightningModules take their config blocks as a dataclass of this file, an OmegaConf node or a
    plain dict, and save them as plain values, so a checkpoint reloads without unpickling numpy,
    OmegaConf or these classes. The one conversion path of a block is `typed(schema, plain(x))`.
    """
    import dataclasses

    from omegaconf import DictConfig

    if x is None:
        return None
    if dataclasses.is_dataclass(x) and not isinstance(x, type):  # through OmegaConf: arch sizes resolve
        return OmegaConf.to_container(OmegaConf.structured(x), resolve=True)
    if isinstance(x, DictConfig) or OmegaConf.is_config(x):
        return OmegaConf.to_container(x, resolve=True)
    if hasattr(x, "tolist"):
        return x.tolist()
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    return x


def typed(schema: type, config: dict | None, block: str):
    """A config block (plain dict, as saved in checkpoints) as its typed dataclass.

    A bad key or value is a D2MError naming the block and key, so a module built from a hand-written
    dict fails as clearly as one built from a YAML file.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from common.errors import D2MError

    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), config or {}))
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "?"
        raise D2MError(f"{block}.{key}: {str(err).splitlines()[0]}") from None
