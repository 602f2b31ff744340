"""`CompositionModule`: trains the composition GAN that turns music into sequences of movement codes.

The model itself, its networks and its forward pass, is `networks.composition_gan.CompositionGAN`
(`self.model`): every network that generation needs (the frozen style extractor, the decomposition
networks and the composition networks) plus only the critics and the style regressor that the
enabled loss terms ask for, so that a checkpoint alone generates dances. This file is the training
system around it.

Each training batch asks the model for the named tensors the enabled terms read (each term
declares them in `reads`), so a term that is switched off costs no time. The batch then goes
through up to three optimisation steps, in order, following Lightning's recipe for GANs (manual
optimisation, one optimiser per player, `toggled_optimizer`, `manual_backward`): discriminator,
generator, style (DESIGN.md section 3). Toggling leaves every other player's parameters out of a
step's backward, so the generator's backward computes no weight gradient for the critics or the
regressor. The discriminator step reads the pass detached; the generator step backpropagates
through it; the style step (`style_step=separate`) recomputes z_dance after the generator's update.
The step never names a term; it loops over the steps and calls `weighted_sum`.

Logged: `train/loss/<term>` (a term in two steps logs `<term>_<step>`), `train/total/<step>`,
`train/loss` (the generator total), and on validation/test batches `val/loss` (the weighted
reconstruction terms, comparable across ablations), `val/loss/<term>` and `val/pose_px`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch import nn

from common.errors import D2MError
from lightning_modules.config import CompositionConfig, DecompositionConfig, StyleExtractorConfig, plain, typed
from lightning_modules.losses import STEPS, build_terms, needed_networks, weighted_sum
from lightning_modules.networks.composition import CORE_NETWORKS, OPTIONAL_NETWORKS
from lightning_modules.networks.composition_gan import FINETUNED, PRODUCED, CompositionGAN
from lightning_modules.networks.decomposition_vae import DECOMPOSITION_NETWORKS

__all__ = ["STEP_ORDER", "CompositionModule", "clip_groups", "term_reads"]

# What the style step moves with `style_step=separate` besides the regressor (as the original's info step).
STYLE_STEP_NETWORKS = ("dance_enc", "audstyle_enc", "stdp_dec")
STEP_ORDER = ("discriminator", "generator", "regressor")
assert set(STEP_ORDER) == set(STEPS)


def term_reads(terms) -> set[str]:
    """The forward-pass names the terms read; a term that declares none reads everything."""
    reads: set[str] = set()
    for t in terms:
        reads |= set(getattr(t, "reads", None) or PRODUCED)
    return reads


def _detached(out: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach() for k, v in out.items()}


class CompositionModule(pl.LightningModule):
    """The composition GAN's training system (manual optimisation) around `self.model`, a `CompositionGAN`.

    `config`, `decomposition_config` and `style_config` are the `composition`, `decomposition` and
    `style` config blocks, as dataclasses or plain dicts (missing keys take the defaults). The data-derived
    numbers (feature width, class names, pose and feature statistics, the feature spec) are kept as
    hyper-parameters so a checkpoint alone can normalise new music and un-normalise generated poses.
    `sequence_units` (L) and `unit_frames` (T) are the data's sequence shape; L sizes the movement
    discriminator.
    """

    # Experiment config keys it is built from (the stage key hashes them).
    CONFIG_READS = ("composition", "decomposition", "style", "data.sequence_units", "data.unit_frames")
    # Checkpoint layout: 2 = the networks inside `self.model` (keys `model.<network>.`); the stage key reads it.
    CHECKPOINT_FORMAT = 2
    monitor = "val/loss"
    monitor_mode = "min"

    def __init__(
        self,
        config: CompositionConfig | dict | None = None,
        decomposition_config: DecompositionConfig | dict | None = None,
        style_config: StyleExtractorConfig | dict | None = None,
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
        config = plain(config) or {}
        decomposition_config = plain(decomposition_config) or {}
        style_config = plain(style_config) or {}
        class_names = [str(c) for c in (class_names or [])]
        pose_mean, pose_std = plain(pose_mean), plain(pose_std)
        feature_mean, feature_std = plain(feature_mean), plain(feature_std)
        feature_spec = plain(feature_spec)
        self.save_hyperparameters()
        self.automatic_optimization = False

        self.cfg: CompositionConfig = typed(CompositionConfig, config, "composition")
        decomposition_cfg: DecompositionConfig = typed(DecompositionConfig, decomposition_config, "decomposition")
        style_cfg: StyleExtractorConfig = typed(StyleExtractorConfig, style_config, "style")
        self.class_names = class_names

        self.terms = build_terms("composition", self.cfg.losses, self.cfg)
        if not self.terms:
            raise D2MError("composition.losses: every loss term is switched off; enable at least one")
        needs = needed_networks(self.terms)
        unknown = needs - set(OPTIONAL_NETWORKS)
        if unknown:
            raise D2MError(f"composition loss terms ask for networks it does not have: {sorted(unknown)}")
        if self.cfg.style_step not in ("separate", "joint"):
            raise D2MError(f"composition.style_step: unknown value '{self.cfg.style_step}'; choices: separate, joint")
        if self.cfg.optim.clip_mode not in ("per_network", "joint"):
            raise D2MError(f"composition.optim.clip_mode: unknown value '{self.cfg.optim.clip_mode}'; "
                           "choices: per_network, joint")
        self.model = CompositionGAN(
            self.cfg, decomposition_cfg, style_cfg, feature_dim=feature_dim, num_classes=len(class_names),
            pose_dim=pose_dim, sequence_units=sequence_units, unit_frames=unit_frames, optional=needs,
            statistics={"pose_mean": pose_mean, "pose_std": pose_std,
                        "feature_mean": feature_mean, "feature_std": feature_std})

        # The optimisation steps that have at least one enabled term, in their fixed order.
        self.active_steps = tuple(s for s in STEP_ORDER if any(s in t.steps for t in self.terms.values()))
        # Lightning counts every optimiser step in `global_step` (and so in `max_steps`): a batch
        # takes this many, and the Trainer's `max_steps` is scaled by it (experiments/trainer.py), so an
        # ablated model trains for the same number of batches.
        self.optimizer_steps_per_batch = len(self.active_steps)
        # Under DDP every step leaves some networks without a gradient (the critics in the generator
        # step, the generators in the critics' step), so the strategy must look for unused parameters.
        self.find_unused_parameters = True
        terms = self.terms.items()
        self.reconstruction_terms = ([n for n, t in terms if getattr(t, "reconstruction", False)]
                                     or [n for n, t in terms if "generator" in t.steps and not t.needs]
                                     or [n for n, t in terms if "generator" in t.steps])
        # What the forward pass computes: in training what the enabled terms read, in evaluation what
        # the reconstruction terms and the pixel error read.
        self.train_reads = term_reads(self.terms.values())
        self.eval_reads = term_reads(self.terms[n] for n in self.reconstruction_terms) | {"pose_reconstruction"}
        self.test_report: dict = {}

    def forward(self, batch: Mapping[str, torch.Tensor], wants: Iterable[str] | None = None,
                sample: bool | None = None, generator: torch.Generator | None = None,
                given: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """The model's named tensors of `wants` (default: what the training terms read); see `CompositionGAN`."""
        return self.model(batch, self.train_reads if wants is None else wants, sample=sample, generator=generator,
                          given=given)

    def load_upstream(self, style_ckpt_path: str | Path, decomposition_ckpt_path: str | Path) -> None:
        """Copy the trained style extractor and decomposition networks in from their Lightning checkpoints."""
        style = _checkpoint_state(style_ckpt_path)
        self._load_part(self.model.style_extractor, _strip(style, "net."), style_ckpt_path, "style extractor")
        decomposition = _checkpoint_state(decomposition_ckpt_path)
        for name in DECOMPOSITION_NETWORKS:
            part = _strip(decomposition, f"model.{name}.")
            self._load_part(getattr(self.model, name), part, decomposition_ckpt_path, name)
        self.model.style_extractor.eval()

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
            return (*CORE_NETWORKS, *self.model.finetuned)
        owners = sorted({n for t in self.terms.values() if step in t.steps for n in t.needs})
        if step == "regressor" and self.cfg.style_step == "separate":
            extra = [n for n in STYLE_STEP_NETWORKS if n in CORE_NETWORKS or n in self.model.finetuned]
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
            groups = [{"params": list(getattr(self.model, n).parameters()), "network": n,
                       "lr": o.lr * (self.cfg.finetune_lr_scale if n in FINETUNED else 1.0)}
                      for n in self.step_networks(step)]
            optimisers.append(torch.optim.Adam(groups, lr=o.lr, **kw))
        return optimisers

    def _optimisers(self) -> dict[str, torch.optim.Optimizer]:
        opts = self.optimizers()
        if not isinstance(opts, (list, tuple)):
            opts = [opts]
        return dict(zip(self.active_steps, opts))

    def setup(self, stage: str) -> None:
        precision = str(getattr(self.trainer, "precision", ""))
        if precision in ("16-mixed", "16"):
            raise D2MError("composition: trainer.precision=16-mixed is not supported (its three manual steps "
                           "would clip scaled gradients); use bf16-mixed or 32-true")

    @property
    def batches_stepped(self) -> int:
        """Training batches done: Lightning's `global_step` counts every optimiser's steps."""
        return int(self.global_step) // max(1, self.optimizer_steps_per_batch)

    def step_view(self, step: str, batch: Mapping[str, torch.Tensor],
                  out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """What the terms of `step` read: the pass itself (generator), detached (critics, joint style
        step), or with `style_step=separate` z_dance recomputed from the detached movement codes."""
        if step == "generator":
            return out
        if step == "regressor" and self.cfg.style_step == "separate":
            reads = term_reads(t for t in self.terms.values() if step in t.steps)
            given = {k: out[k].detach() for k in ("movement_mean", "movement_logvar", "style") if k in out}
            return self(batch, wants=reads, sample=True, given=given)
        return _detached(out)

    def clip_step(self, optimizer) -> None:
        """Gradient-norm clipping of one step's gradients (never scaled: 16-mixed is refused)."""
        clip = float(self.cfg.optim.grad_clip)
        if clip > 0 and self.cfg.optim.clip_mode == "joint":
            self.clip_gradients(optimizer, gradient_clip_val=clip, gradient_clip_algorithm="norm")
        else:
            clip_groups(optimizer, clip, self.cfg.optim.clip_mode)

    def training_step(self, batch, batch_idx):
        """Lightning's GAN recipe: per player, toggle its optimiser, its loss, backward, clip, step."""
        out = self(batch, sample=True)
        opts = self._optimisers()
        n = batch["poses"].shape[0]
        iteration = self.batches_stepped
        networks = self.model.networks
        generator_total = None
        for step in STEP_ORDER:
            if step not in opts:
                continue
            optimizer = opts[step]
            with self.toggled_optimizer(optimizer):
                view = self.step_view(step, batch, out)
                total, parts = weighted_sum(self.terms, step, view, networks, iteration)
                optimizer.zero_grad()
                self.manual_backward(total)
                self.clip_step(optimizer)
                optimizer.step()
                optimizer.zero_grad()  # leave no stale gradient for the next player's step (and free it)
            for name, value in parts.items():
                self.log(f"train/loss/{name}", value, batch_size=n)
            self.log(f"train/total/{step}", total.detach(), batch_size=n)
            if step == "generator":
                generator_total = total.detach()
        if generator_total is not None:
            self.log("train/loss", generator_total, prog_bar=True, batch_size=n)

    def _eval_step(self, batch, batch_idx: int, stage: str) -> torch.Tensor:
        """Reconstruction losses at the terms' full weights, with means for codes and fixed music noise."""
        gen = torch.Generator(device="cpu").manual_seed(batch_idx)
        out = self(batch, wants=self.eval_reads, sample=False, generator=gen)
        n = batch["poses"].shape[0]
        networks = self.model.networks
        total = torch.zeros((), device=self.device)
        for name in self.reconstruction_terms:
            value = self.terms[name].compute("generator", out, networks)
            self.log(f"{stage}/loss/{name}", value, batch_size=n, sync_dist=True)
            total = total + float(self.terms[name].cfg.weight) * value
        self.log(f"{stage}/loss", total, batch_size=n, sync_dist=True, prog_bar=stage == "val")
        px = self._pose_error_px(out["pose_reconstruction"], out["unit_poses"])
        self.log(f"{stage}/pose_px", px.mean(), batch_size=n, sync_dist=True)
        return px

    def _pose_error_px(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-unit mean joint Euclidean error in pixels."""
        d = ((pred - target) * self.model.pose_std).reshape(*pred.shape[:-1], -1, 2).norm(dim=-1)
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


def _strip(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries under `prefix`, with the prefix removed."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
