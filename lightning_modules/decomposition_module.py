"""`DecompositionModule`: trains the decomposition VAE on pairs of jittered copies of dance units.

The model itself, its networks and its forward pass, is `networks.decomposition_vae.DecompositionVAE`
(`self.model`); this file is the training system around it: the loss terms, the optimiser and its
clipping, logging and the test metrics. Each step asks the model for exactly the named tensors the
enabled terms read (each term declares them in `reads`), so a term that is switched off costs
nothing and the step never names a term.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pytorch_lightning as pl
import torch

from common.errors import D2MError
from lightning_modules.config import DecompositionConfig, plain, typed
from lightning_modules.losses import build_terms, needed_networks, weighted_sum
from lightning_modules.networks.decomposition_vae import (
    DECODE_GROUPS,
    DECOMPOSITION_NETWORKS,
    OUTPUTS,
    DecompositionVAE,
)
from lightning_modules.schedules import scheduler_config

__all__ = ["DecompositionModule", "decode_plan", "joint_error_px", "joint_speed_px"]

# The networks clipped with `clip_mode=per_network`, each to its own norm (the original's choice).
CLIPPED_NETWORKS = ("movement_enc", "stdp_dec")


def joint_error_px(pred: torch.Tensor, target: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Per-sample mean joint Euclidean error in pixels, (N,), after un-normalising both poses."""
    p = pred * std + mean
    t = target * std + mean
    d = (p - t).reshape(*p.shape[:-1], -1, 2).norm(dim=-1)  # (N, T, joints)
    return d.reshape(d.shape[0], -1).mean(dim=1)


def joint_speed_px(poses: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Per-sample mean joint displacement between consecutive frames in pixels, (N,), of normalised units.

    A decoder that smooths its units to a crawl can still score a fair pixel error; comparing this
    speed with the real units' tells it apart.
    """
    p = (poses * std + mean).reshape(*poses.shape[:-1], -1, 2)  # (N, T, joints, 2)
    return (p[:, 1:] - p[:, :-1]).norm(dim=-1).reshape(p.shape[0], -1).mean(dim=1)


def decode_plan(terms: Mapping[str, object]) -> tuple[str, ...]:
    """The decode groups (keys of `DECODE_GROUPS`) whose outputs the terms declare in `reads`.

    A term without a `reads` declaration adds nothing to the plan; whatever it reads is still
    computed, only in a call of its own.
    """
    read = {name for t in terms.values() for name in getattr(t, "reads", ())}
    return tuple(g for g, names in DECODE_GROUPS.items() if read & set(names))


class DecompositionModule(pl.LightningModule):
    """The decomposition VAE's training system around its model, `self.model` (a `DecompositionVAE`).

    `config` is the `decomposition` config block: a `DecompositionConfig`, an OmegaConf node or a
    plain dict (missing keys take the defaults), saved as plain values; `pose_mean` / `pose_std`
    (pose_dim numbers each) turn normalised errors into pixels for the reported reconstruction errors.
    """

    # Experiment config keys it is built from (the stage key hashes them).
    CONFIG_READS = ("decomposition",)
    # Checkpoint layout: 2 = the networks inside `self.model` (keys `model.<network>.`); the stage key reads it.
    CHECKPOINT_FORMAT = 2
    monitor = "val/loss"
    monitor_mode = "min"

    def __init__(self, config: DecompositionConfig | dict | None = None, pose_dim: int = 28,
                 pose_mean: list | None = None, pose_std: list | None = None):
        super().__init__()
        config = plain(config) or {}
        pose_mean, pose_std = plain(pose_mean), plain(pose_std)
        self.save_hyperparameters()
        self.cfg: DecompositionConfig = typed(DecompositionConfig, config, "decomposition")
        self.pose_dim = int(pose_dim)
        for key, choices in (("kl_reduction", ("sum", "mean")), ("pair_reduction", ("sum", "mean")),
                             ("movement_distance_codes", ("sampled", "mean"))):
            if getattr(self.cfg, key) not in choices:
                raise D2MError(f"decomposition.{key}: unknown value '{getattr(self.cfg, key)}'; "
                               f"choices: {', '.join(choices)}")
        if self.cfg.optim.clip_mode not in ("per_network", "joint"):
            raise D2MError(f"decomposition.optim.clip_mode: unknown value '{self.cfg.optim.clip_mode}'; "
                           "choices: per_network, joint")
        self.terms = build_terms("decomposition", self.cfg.losses, self.cfg)
        if not self.terms:
            raise D2MError("decomposition.losses: every loss term is switched off; enable at least one")
        extra = needed_networks(self.terms)
        if extra:
            raise D2MError(f"decomposition loss terms ask for networks it does not have: {sorted(extra)}")
        self.model = DecompositionVAE(self.cfg, self.pose_dim)
        mean = torch.zeros(pose_dim) if pose_mean is None else torch.as_tensor(pose_mean, dtype=torch.float32)
        std = torch.ones(pose_dim) if pose_std is None else torch.as_tensor(pose_std, dtype=torch.float32)
        if mean.shape != (pose_dim,) or std.shape != (pose_dim,):
            raise D2MError(f"pose_mean and pose_std must have {pose_dim} numbers each, "
                           f"got {tuple(mean.shape)} and {tuple(std.shape)}")
        self.register_buffer("pose_mean", mean, persistent=False)
        self.register_buffer("pose_std", std, persistent=False)
        self.decodes = decode_plan(self.terms)
        self.train_reads = {n for t in self.terms.values() for n in (getattr(t, "reads", None) or OUTPUTS)}
        self.eval_reads = self.train_reads | {"recon_a"}  # the pixel error reads it whatever the terms
        # Under DDP a network that no enabled term reaches gets no gradient: the strategy must then
        # look for unused parameters (an ablated cell), and need not otherwise (the full model).
        reached = {n for t in self.terms.values() for n in getattr(t, "trains", DECOMPOSITION_NETWORKS)}
        self.find_unused_parameters = bool(set(DECOMPOSITION_NETWORKS) - reached)
        self.optimizer_steps_per_batch = 1
        self.test_report: dict = {}

    def forward(self, batch: Mapping[str, torch.Tensor], wants: Iterable[str] | None = None,
                sample: bool | None = None, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """The model's named tensors of `wants` (default: what the training terms read); see `DecompositionVAE`."""
        return self.model(batch, self.train_reads if wants is None else wants, sample=sample, generator=generator)

    # -- training -------------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        out = self(batch, sample=True)
        total, parts = weighted_sum(self.terms, "generator", out, self.model.networks, int(self.global_step))
        n = batch["pose_a"].shape[0]
        for name, value in parts.items():
            self.log(f"train/loss/{name}", value, batch_size=n)
        for name, t in self.terms.items():
            if t.cfg.warmup_slope > 0:
                self.log(f"train/weight/{name}", t.weight_at(int(self.global_step)), batch_size=n)
        self.log("train/loss", total.detach(), prog_bar=True, batch_size=n)
        if "recon_a" in out:  # free when a term decoded it: the curve an overfitting check reads
            with torch.no_grad():
                px = joint_error_px(out["recon_a"], batch["pose_a"], self.pose_mean, self.pose_std).mean()
            self.log("train/recon_px", px, batch_size=n)
        return total

    def _eval_step(self, batch, batch_idx: int, stage: str) -> dict[str, torch.Tensor]:
        """Loss at the terms' full weights (warm-ups ignored, so epochs compare) and pixel errors."""
        gen = torch.Generator().manual_seed(batch_idx)  # the same random frames at every evaluation
        out = self(batch, wants=self.eval_reads, sample=False, generator=gen)
        n = batch["pose_a"].shape[0]
        total = sum(float(t.cfg.weight) * t.compute("generator", out, self.model.networks) for t in self.terms.values())
        self.log(f"{stage}/loss", total, batch_size=n, sync_dist=True)
        recon_px = joint_error_px(out["recon_a"], batch["pose_a"], self.pose_mean, self.pose_std)
        self.log(f"{stage}/recon_px", recon_px.mean(), batch_size=n, sync_dist=True)
        return {"recon_px": recon_px, "recon": out["recon_a"]}

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, batch_idx, "val")

    def on_test_epoch_start(self) -> None:
        self._test_sums = torch.zeros(5, dtype=torch.float64, device=self.device)

    def test_step(self, batch, batch_idx):
        errs = self._eval_step(batch, batch_idx, "test")
        poses = batch["pose_a"]
        first = poses[:, :1].expand_as(poses)
        first_px = joint_error_px(first, poses, self.pose_mean, self.pose_std)
        self.log("test/first_pose_px", first_px.mean(), batch_size=poses.shape[0], sync_dist=True)
        recon_speed = joint_speed_px(errs["recon"], self.pose_mean, self.pose_std)
        real_speed = joint_speed_px(poses, self.pose_mean, self.pose_std)
        self._test_sums += torch.stack([errs["recon_px"].sum(), first_px.sum(),
                                        torch.tensor(float(poses.shape[0]), device=self.device),
                                        recon_speed.sum(), real_speed.sum()]).double()

    def on_test_epoch_end(self) -> None:
        sums = self._test_sums
        if self.trainer is not None and self.trainer.world_size > 1:
            sums = self.all_gather(sums).reshape(-1, 5).sum(0)
        count = max(float(sums[2]), 1.0)
        recon, first, recon_speed, real_speed = (float(sums[i]) / count for i in (0, 1, 3, 4))
        self.test_report = {
            "recon_px": recon,
            "first_pose_px": first,
            "n_test": int(sums[2]),
            "recon_speed_px": recon_speed,
            "real_speed_px": real_speed,
        }
        # the two ratios the training targets read: error against the hold-the-first-pose baseline,
        # and how fast the rebuilt units move against the real ones
        self.log("test/recon_ratio", recon / max(first, 1e-8))
        self.log("test/speed_ratio", recon_speed / max(real_speed, 1e-8))

    def configure_optimizers(self):
        """One Adam, one named parameter group per network (the clipping groups of `per_network`)."""
        o = self.cfg.optim
        groups = [{"params": list(getattr(self.model, n).parameters()), "network": n} for n in DECOMPOSITION_NETWORKS]
        opt = torch.optim.Adam(groups, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)
        schedule = scheduler_config(opt, o)
        return opt if schedule is None else {"optimizer": opt, "lr_scheduler": schedule}

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        """Clip as `optim.grad_clip` and `optim.clip_mode` say, whatever the Trainer was given.

        Lightning calls this after the backward and after unscaling mixed-precision gradients.
        `per_network`: `clip_grad_norm_(net, grad_clip)` for each of `CLIPPED_NETWORKS`; `joint`: one
        norm over every parameter.
        """
        self.clip_step_gradients()

    def clip_step_gradients(self) -> None:
        """The clipping itself, on gradients already unscaled (also called by loops without a Trainer)."""
        clip = float(self.cfg.optim.grad_clip)
        if clip <= 0:
            return
        if self.cfg.optim.clip_mode == "joint":
            torch.nn.utils.clip_grad_norm_(list(self.parameters()), clip)
            return
        for name in CLIPPED_NETWORKS:
            torch.nn.utils.clip_grad_norm_(getattr(self.model, name).parameters(), clip)
