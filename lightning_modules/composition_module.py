"""`CompositionModule`: trains the composition GAN that turns music into sequences of movement codes.

It holds every network that generation needs (the frozen style extractor, the decomposition
networks and the composition networks) so that its checkpoint alone generates dances, plus only the
critics and the style regressor that the enabled loss terms ask for.

One shared forward pass per batch produces named tensors on demand (`CompositionOutputs`); a loss
term reads the names it needs and only those are computed, so a term that is switched off costs no
time. The batch then goes through up to three optimisation steps, in order: discriminator,
generator, style regressor (DESIGN.md section 3). The discriminator and regressor steps see the
forward pass detached, so only their own networks learn there; the generator step backpropagates
through it. The discriminator step only changes the critics, so the generator step can reuse the
same forward pass. The step never names a term; it loops over the steps and calls `weighted_sum`.

Names produced (L = units per sequence, T = frames per unit, rows of per-unit tensors are
sample-major: the L units of one sample are consecutive):

- `unit_poses` (B*L, T, P): the real units, normalised; `audio` (B, F): time-mean of the music
  features; `style` (B, S): the frozen extractor's style feature over all the music of the sequence.
- `movement_mean`, `movement_logvar` (B*L, M): the movement encoder on the real units.
- `dance_mean`, `dance_logvar`, `dance_z` (B, D): z_dance of the real dance (dance encoder).
- `dance_movement_mean`, `dance_movement_logvar`, `dance_movement_z` (B*L, M): decoded from `dance_z`.
- `music_mean`, `music_logvar`, `music_z` (B, D): z_dance from the music (music-to-dance encoder).
- `music_movement_mean`, `music_movement_logvar` (B*L, M): decoded from `music_z`.
- `unit_z_init` (B*L, I): initial-pose encoder mean of each real unit's first frame.
- `pose_reconstruction` (B*L, T, P): the pose decoder on `unit_z_init` and `dance_movement_z`.

Codes are sampled (reparameterised) in training and taken at their means in evaluation.

Logged: `train/loss/<term>` (a term in two steps logs `<term>_<step>`), `train/total/<step>`,
`train/loss` (the generator total), and on validation/test batches `val/loss` (the weighted
reconstruction terms, comparable across ablations), `val/loss/<term>` and `val/pose_px`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from datamodules.errors import D2MError
from lightning_modules.config import CompositionConfig, DecompositionConfig, StyleExtractorConfig, typed
from lightning_modules.lazy_outputs import LazyOutputs
from lightning_modules.losses import STEPS, build_terms, needed_networks, weighted_sum
from lightning_modules.networks.composition import (
    CORE_NETWORKS,
    OPTIONAL_NETWORKS,
    build_composition_networks,
    join_codes,
)
from lightning_modules.networks.decomposition import build_decomposition_networks
from lightning_modules.networks.style_extractor import StyleExtractor

__all__ = ["DECOMPOSITION_NETWORKS", "STEP_ORDER", "CompositionModule", "CompositionOutputs"]

DECOMPOSITION_NETWORKS = ("initp_enc", "initp_dec", "movement_enc", "stdp_dec")
# Learn at lr * finetune_lr_scale (frozen when it is 0); the movement encoder only with
# `finetune_movement_encoder` (the original keeps it frozen and its codes detached).
FINETUNED = ("movement_enc", "stdp_dec")
FROZEN = ("initp_enc", "initp_dec")  # used as trained by the decomposition stage
# What the style step moves with `style_step=separate` besides the regressor (as the original's info step).
STYLE_STEP_NETWORKS = ("dance_enc", "audstyle_enc", "stdp_dec")
STEP_ORDER = ("discriminator", "generator", "regressor")
assert set(STEP_ORDER) == set(STEPS)


def _plain(x):
    """Hyper-parameters as plain Python values: checkpoints reload without unpickling numpy or OmegaConf."""
    if x is None:
        return None
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return _plain(dataclasses.asdict(x))
    if isinstance(x, DictConfig) or OmegaConf.is_config(x):
        return OmegaConf.to_container(x, resolve=True)
    if hasattr(x, "tolist"):
        return x.tolist()
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    return x


def _reparameterise(mean: torch.Tensor, logvar: torch.Tensor, sample: bool) -> torch.Tensor:
    if not sample:
        return mean
    return mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)


class CompositionOutputs(LazyOutputs):
    """The batch's forward pass, computed lazily: each named tensor is built the first time it is read.

    `detached()` is a view of the same pass whose tensors come out detached (for the critic and
    regressor steps); both views share one cache, so nothing is computed twice.
    """

    kind = "composition forward pass"

    def __init__(self, module: CompositionModule, batch: Mapping[str, torch.Tensor], sample: bool,
                 generator: torch.Generator | None = None):
        poses, features = batch["poses"], batch["features"]
        if poses.dim() != 4:
            raise D2MError(f"composition batches need poses of shape (B, L, T, P), got {tuple(poses.shape)}")
        b, units, frames, pose_dim = poses.shape
        if units != module.sequence_units:
            raise D2MError(f"the composition model was built for sequences of {module.sequence_units} units "
                           f"(sequence_units) but the batch has {units}")
        self.m = module
        self.batch = batch
        self.sample = sample
        self.generator = generator
        self.units, self.frames = units, frames
        self._detach = False
        super().__init__()
        self._values.update(unit_poses=poses.reshape(b * units, frames, pose_dim), features=features)
        groups: dict[Callable[[], None], tuple[str, ...]] = {
            self._audio: ("audio",),
            self._style: ("style",),
            self._movement: ("movement_mean", "movement_logvar"),
            self._dance: ("dance_mean", "dance_logvar", "dance_z"),
            self._dance_movement: ("dance_movement_mean", "dance_movement_logvar", "dance_movement_z"),
            self._music: ("music_mean", "music_logvar", "music_z"),
            self._music_movement: ("music_movement_mean", "music_movement_logvar"),
            self._initial: ("unit_z_init",),
            self._poses: ("pose_reconstruction",),
        }
        for producer, keys in groups.items():
            for key in keys:
                self._producers[key] = producer

    # Mapping protocol: only computed values count as present, so `computed` shows what a step cost.
    def __getitem__(self, key: str) -> torch.Tensor:
        value = self._get(key)
        return value.detach() if self._detach else value

    def detached(self) -> CompositionOutputs:
        view = object.__new__(CompositionOutputs)
        view.__dict__.update(self.__dict__)
        view._detach = True
        return view

    def _get(self, key: str) -> torch.Tensor:
        """Producers read through this, never detached, so the shared graph stays whole."""
        if key not in self._values:
            self._producers[key]()
        return self._values[key]

    # -- producers ------------------------------------------------------------------------------------
    def _audio(self) -> None:
        self._values["audio"] = self._values["features"].mean(dim=1)

    def fresh(self) -> CompositionOutputs:
        """A new pass over the same batch that reuses, detached, what no trained network produced.

        The style step with `style_step=separate` runs after the generator step has changed the
        encoders, so it recomputes z_dance from the music and from the (detached) movement codes.
        """
        view = CompositionOutputs(self.m, self.batch, self.sample, self.generator)
        for key in ("movement_mean", "movement_logvar"):
            view._values[key] = self._get(key).detach()
        for key in ("audio", "style", "unit_z_init"):
            if key in self._values:
                view._values[key] = self._values[key].detach()
        return view

    def _style(self) -> None:
        self._values["style"] = self.m.style_feature(self._values["features"])

    def _movement(self) -> None:
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.m.movement_encoder_trained):
            mean, logvar = self.m.movement_enc(self._values["unit_poses"])
        self._values.update(movement_mean=mean, movement_logvar=logvar)

    def _dance(self) -> None:
        codes = join_codes(self._get("movement_mean"), self._get("movement_logvar"), self.units)
        mean, logvar = self.m.dance_enc(codes)
        self._values.update(dance_mean=mean, dance_logvar=logvar,
                            dance_z=_reparameterise(mean, logvar, self.sample))

    def _dance_movement(self) -> None:
        mean, logvar = self.m.dance_dec(self._get("dance_z"), self.units)
        self._values.update(dance_movement_mean=mean, dance_movement_logvar=logvar,
                            dance_movement_z=_reparameterise(mean, logvar, self.sample))

    def _music(self) -> None:
        mean, logvar = self.m.audstyle_enc(self._get("style"), generator=self.generator)
        self._values.update(music_mean=mean, music_logvar=logvar,
                            music_z=_reparameterise(mean, logvar, self.sample))

    def _music_movement(self) -> None:
        mean, logvar = self.m.dance_dec(self._get("music_z"), self.units)
        self._values.update(music_movement_mean=mean, music_movement_logvar=logvar)

    def _initial(self) -> None:
        with torch.no_grad():
            mean, _ = self.m.initp_enc(self._values["unit_poses"][:, 0])
        self._values["unit_z_init"] = mean

    def _poses(self) -> None:
        self._values["pose_reconstruction"] = self.m.stdp_dec(
            self._get("unit_z_init"), self._get("dance_movement_z"), self.frames
        )


class CompositionModule(pl.LightningModule):
    """The composition GAN's training logic (manual optimisation); networks named as in the original.

    `config`, `decomposition_config` and `style_config` are the `composition`, `decomposition` and
    `style` config blocks as plain dicts (missing keys take the dataclass defaults). The data-derived
    numbers (feature width, class names, pose and feature statistics, the feature spec) are kept as
    hyper-parameters so a checkpoint alone can normalise new music and un-normalise generated poses.
    `sequence_units` (L) and `unit_frames` (T) are the data's sequence shape; L sizes the movement
    discriminator.
    """

    monitor = "val/loss"
    monitor_mode = "min"

    def __init__(
        self,
        config: dict | None = None,
        decomposition_config: dict | None = None,
        style_config: dict | None = None,
        feature_dim: int = 28,
        class_names: list[str] | None = None,
        pose_mean: list | None = None,
        pose_std: list | None = None,
        feature_mean: list | None = None,
        feature_std: list | None = None,
        feature_spec: dict | None = None,
        sequence_units: int = 3,
        unit_frames: int = 32,
        pose_dim: int = 28,
    ):
        super().__init__()
        config = _plain(config) or {}
        decomposition_config = _plain(decomposition_config) or {}
        style_config = _plain(style_config) or {}
        class_names = [str(c) for c in (class_names or [])]
        pose_mean, pose_std = _plain(pose_mean), _plain(pose_std)
        feature_mean, feature_std = _plain(feature_mean), _plain(feature_std)
        feature_spec = _plain(feature_spec)
        self.save_hyperparameters()
        self.automatic_optimization = False

        self.cfg: CompositionConfig = typed(CompositionConfig, config, "composition")
        self.decomposition_cfg: DecompositionConfig = typed(DecompositionConfig, decomposition_config,
                                                             "decomposition")
        self.style_cfg: StyleExtractorConfig = typed(StyleExtractorConfig, style_config, "style")
        self.feature_dim, self.pose_dim = int(feature_dim), int(pose_dim)
        self.sequence_units, self.unit_frames = int(sequence_units), int(unit_frames)
        if self.sequence_units < 1 or self.unit_frames < 2:
            raise D2MError(f"composition needs sequence_units >= 1 and unit_frames >= 2, got "
                           f"{self.sequence_units} and {self.unit_frames}")
        self.class_names = class_names

        self.terms = build_terms("composition", self.cfg.losses, self.cfg)
        if not self.terms:
            raise D2MError("composition.losses: every loss term is switched off; enable at least one")
        needs = needed_networks(self.terms)
        unknown = needs - set(OPTIONAL_NETWORKS)
        if unknown:
            raise D2MError(f"composition loss terms ask for networks it does not have: {sorted(unknown)}")

        # The style extractor: frozen, always in eval mode, in no optimiser.
        self.style_extractor = StyleExtractor(self.feature_dim, max(len(class_names), 2), self.style_cfg)
        self.style_extractor.requires_grad_(False)
        self.style_extractor.eval()
        for name, net in build_decomposition_networks(self.decomposition_cfg, self.pose_dim).items():
            setattr(self, name, net)
        for name in FROZEN:
            getattr(self, name).requires_grad_(False)
        # Frozen networks are in no optimiser, so their weight gradients are not computed; a frozen
        # movement encoder also runs without a graph (its codes are detached, its backward is gone).
        self.movement_encoder_trained = self.cfg.finetune_lr_scale > 0 and self.cfg.finetune_movement_encoder
        self.finetuned = tuple(n for n in FINETUNED if self.cfg.finetune_lr_scale > 0
                               and (n != "movement_enc" or self.movement_encoder_trained))
        for name in FINETUNED:
            if name not in self.finetuned:
                getattr(self, name).requires_grad_(False)
        if self.cfg.style_step not in ("separate", "joint"):
            raise D2MError(f"composition.style_step: unknown value '{self.cfg.style_step}'; choices: separate, joint")
        if self.cfg.optim.clip_mode not in ("per_network", "joint"):
            raise D2MError(f"composition.optim.clip_mode: unknown value '{self.cfg.optim.clip_mode}'; "
                           "choices: per_network, joint")
        built = build_composition_networks(self.cfg, self.decomposition_cfg.movement_dim,
                                           self.style_extractor.style_dim, self.feature_dim,
                                           self.sequence_units, optional=needs)
        self.composition_network_names = tuple(built.keys())
        for name, net in built.items():
            setattr(self, name, net)

        # The optimisation steps that have at least one enabled term, in their fixed order.
        self.active_steps = tuple(s for s in STEP_ORDER if any(s in t.steps for t in self.terms.values()))
        # Lightning counts every optimiser step towards `global_step` (and so `max_steps`); only one
        # step per batch is counted, so an ablated model trains for the same number of batches.
        self.counted_step = "generator" if "generator" in self.active_steps else self.active_steps[0]
        terms = self.terms.items()
        self.reconstruction_terms = ([n for n, t in terms if getattr(t, "reconstruction", False)]
                                     or [n for n, t in terms if "generator" in t.steps and not t.needs]
                                     or [n for n, t in terms if "generator" in t.steps])

        stats = {"pose_mean": (pose_mean, self.pose_dim, 0.0), "pose_std": (pose_std, self.pose_dim, 1.0),
                 "feature_mean": (feature_mean, self.feature_dim, 0.0),
                 "feature_std": (feature_std, self.feature_dim, 1.0)}
        for name, (values, n, fill) in stats.items():
            self.register_buffer(name, self._vector(values, n, fill, name), persistent=False)
        self.test_report: dict = {}

    @staticmethod
    def _vector(values, n: int, fill: float, name: str) -> torch.Tensor:
        if values is None:
            return torch.full((n,), fill)
        t = torch.as_tensor(values, dtype=torch.float32).reshape(-1)
        if t.shape != (n,):
            raise D2MError(f"{name} must have {n} numbers, got {t.numel()}")
        return t

    # -- networks -------------------------------------------------------------------------------------
    @property
    def networks(self) -> nn.ModuleDict:
        """Every built network by its original name (a view; they are registered as attributes)."""
        names = DECOMPOSITION_NETWORKS + self.composition_network_names
        return nn.ModuleDict({name: getattr(self, name) for name in names})

    def has_network(self, name: str) -> bool:
        return name in self.composition_network_names or name in DECOMPOSITION_NETWORKS

    def train(self, mode: bool = True):
        """Keep the frozen style extractor in eval mode whatever Lightning switches."""
        super().train(mode)
        self.style_extractor.eval()
        return self

    def style_feature(self, features: torch.Tensor) -> torch.Tensor:
        """The frozen extractor's style feature of the music; `style_frames > 0` reads only its start."""
        frames = self.cfg.style_frames
        if frames > 0:
            features = features[:, :frames]
        with torch.no_grad():
            return self.style_extractor.style_feature(features)

    def outputs(self, batch: Mapping[str, torch.Tensor], sample: bool | None = None,
                generator: torch.Generator | None = None) -> CompositionOutputs:
        """The lazy forward pass over a batch; codes are sampled when `sample` (default: in training)."""
        return CompositionOutputs(self, batch, self.training if sample is None else sample, generator)

    def load_upstream(self, style_ckpt_path: str | Path, decomposition_ckpt_path: str | Path) -> None:
        """Copy the trained style extractor and decomposition networks in from their Lightning checkpoints."""
        style = _checkpoint_state(style_ckpt_path)
        self._load_part(self.style_extractor, _strip(style, ("net.", "style_extractor.")), style_ckpt_path,
                        "style extractor")
        decomposition = _checkpoint_state(decomposition_ckpt_path)
        for name in DECOMPOSITION_NETWORKS:
            part = _strip(decomposition, (f"{name}.", f"nets.{name}.", f"networks.{name}."))
            self._load_part(getattr(self, name), part, decomposition_ckpt_path, name)
        self.style_extractor.eval()

    @staticmethod
    def _load_part(net: nn.Module, state: dict, path, what: str) -> None:
        if not state:
            raise D2MError(f"{path}: holds no weights for the {what}")
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as err:
            first = " ".join(str(err).split())[:300]
            raise D2MError(f"{path}: its {what} does not fit this composition model's config "
                           f"({first})") from None

    # -- training -------------------------------------------------------------------------------------
    def step_networks(self, step: str) -> tuple[str, ...]:
        """The networks the optimiser of `step` moves, in a fixed order."""
        if step == "generator":
            return (*CORE_NETWORKS, *self.finetuned)
        owners = sorted({n for t in self.terms.values() if step in t.steps for n in t.needs})
        if step == "regressor" and self.cfg.style_step == "separate":
            extra = [n for n in STYLE_STEP_NETWORKS if n in CORE_NETWORKS or n in self.finetuned]
            owners += [n for n in extra if n not in owners]
        return tuple(owners)

    def configure_optimizers(self):
        """One Adam per step (player); one parameter group per network, named, at its learning rate.

        The groups are also the clipping groups of `clip_mode=per_network`.
        """
        o = self.cfg.optim
        kw = {"betas": tuple(o.betas), "weight_decay": o.weight_decay}
        optimisers = []
        for step in self.active_steps:
            groups = [{"params": list(getattr(self, n).parameters()), "network": n,
                       "lr": o.lr * (self.cfg.finetune_lr_scale if n in FINETUNED else 1.0)}
                      for n in self.step_networks(step)]
            optimisers.append(torch.optim.Adam(groups, lr=o.lr, **kw))
        return optimisers

    def _optimisers(self) -> dict[str, torch.optim.Optimizer]:
        opts = self.optimizers()
        if not isinstance(opts, (list, tuple)):
            opts = [opts]
        return dict(zip(self.active_steps, opts))

    def optimisation_step(self, step: str, out: CompositionOutputs,
                          optimizer) -> tuple[torch.Tensor | None, dict]:
        """One of the three steps: its weighted loss, backward, gradient clipping, one update.

        Works inside a Trainer (Lightning handles precision and devices) and on its own (tests and
        benchmarks call it with the optimisers of `configure_optimizers`).
        """
        if step == "generator":
            view = out
        elif step == "regressor" and self.cfg.style_step == "separate":
            view = out.fresh()
        else:
            view = out.detached()
        total, parts = weighted_sum(self.terms, step, view, self.networks, int(self.global_step))
        if total is None:
            return None, parts
        optimizer.zero_grad()
        clip = float(self.cfg.optim.grad_clip)
        if self._trainer is None:
            total.backward()
            clip_groups(optimizer, clip, self.cfg.optim.clip_mode)
            optimizer.step()
        else:
            self.manual_backward(total)
            if clip > 0 and self.cfg.optim.clip_mode == "joint":
                self.clip_gradients(optimizer, gradient_clip_val=clip, gradient_clip_algorithm="norm")
            else:
                clip_groups(optimizer, clip, self.cfg.optim.clip_mode)
            if step == self.counted_step:
                optimizer.step()
            else:  # the same update through the strategy (precision plugin), without counting a step
                raw = getattr(optimizer, "optimizer", optimizer)
                self.trainer.strategy.optimizer_step(raw, closure=lambda: None)
        return total.detach(), parts

    def training_step(self, batch, batch_idx):
        out = self.outputs(batch, sample=True)
        opts = self._optimisers()
        n = batch["poses"].shape[0]
        generator_total = None
        for step in STEP_ORDER:
            if step not in opts:
                continue
            total, parts = self.optimisation_step(step, out, opts[step])
            for name, value in parts.items():
                self.log(f"train/loss/{name}", value, batch_size=n)
            if total is not None:
                self.log(f"train/total/{step}", total, batch_size=n)
                if step == "generator":
                    generator_total = total
        if generator_total is not None:
            self.log("train/loss", generator_total, prog_bar=True, batch_size=n)

    def _eval_step(self, batch, batch_idx: int, stage: str) -> torch.Tensor:
        """Reconstruction losses at the terms' full weights, with means for codes and fixed music noise."""
        gen = torch.Generator(device="cpu").manual_seed(batch_idx)
        out = self.outputs(batch, sample=False, generator=gen)
        n = batch["poses"].shape[0]
        total = torch.zeros((), device=self.device)
        for name in self.reconstruction_terms:
            value = self.terms[name].compute("generator", out, self.networks)
            self.log(f"{stage}/loss/{name}", value, batch_size=n, sync_dist=True)
            total = total + float(self.terms[name].cfg.weight) * value
        self.log(f"{stage}/loss", total, batch_size=n, sync_dist=True, prog_bar=stage == "val")
        px = self._pose_error_px(out["pose_reconstruction"], out["unit_poses"])
        self.log(f"{stage}/pose_px", px.mean(), batch_size=n, sync_dist=True)
        return px

    def _pose_error_px(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-unit mean joint Euclidean error in pixels."""
        d = ((pred - target) * self.pose_std).reshape(*pred.shape[:-1], -1, 2).norm(dim=-1)
        return d.reshape(d.shape[0], -1).mean(dim=1)

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, batch_idx, "val")

    def on_test_epoch_start(self) -> None:
        self._test_sums = torch.zeros(2, dtype=torch.float64, device=self.device)

    def test_step(self, batch, batch_idx):
        px = self._eval_step(batch, batch_idx, "test")
        self._test_sums += torch.stack([px.sum(), torch.tensor(float(px.numel()), device=px.device)]).double()

    def on_test_epoch_end(self) -> None:
        sums = self._test_sums
        if self.trainer is not None and self.trainer.world_size > 1:
            sums = self.all_gather(sums).reshape(-1, 2).sum(0)
        self.test_report = {"pose_reconstruction_px": float(sums[0]) / max(float(sums[1]), 1.0),
                            "n_test_units": int(sums[1])}


def clip_groups(optimizer, clip: float, mode: str) -> None:
    """Gradient-norm clipping at `clip`: one norm per parameter group (per network) or one over all."""
    if clip <= 0:
        return
    raw = getattr(optimizer, "optimizer", optimizer)  # a LightningOptimizer wraps the torch one
    if mode == "joint":
        torch.nn.utils.clip_grad_norm_([p for g in raw.param_groups for p in g["params"]], clip)
        return
    for group in raw.param_groups:
        torch.nn.utils.clip_grad_norm_(group["params"], clip)


def _checkpoint_state(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise D2MError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise D2MError(f"cannot read checkpoint {path}: {str(err).splitlines()[0]}") from None
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise D2MError(f"{path} is not a checkpoint with a state dict")
    return state


def _strip(state: dict[str, torch.Tensor], prefixes: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """The entries under the first prefix that has any, with the prefix removed."""
    for prefix in prefixes:
        part = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if part:
            return part
    return {}
