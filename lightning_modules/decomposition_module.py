"""`DecompositionModule`: trains the decomposition VAE on pairs of jittered copies of dance units.

One shared forward pass per step produces named tensors on demand (`DecompositionOutputs`): a loss
term reads the names it needs and only those are computed, so a term that is switched off costs
nothing and the step never names a term. Names produced (suffix `_a` / `_b` = the two copies):

- `pose_a`, `pose_b`: the input units (N, T, pose_dim), normalised.
- `movement_mean_*`, `movement_logvar_*`, `z_movement_*`: the movement encoder's posterior and sample.
- `init_mean_*`, `init_logvar_*`, `z_init_*`: the initial-pose encoder on each copy's first frame.
- `recon_*`: the pose decoder on the copy's own codes.
- `cross_a` = decoder(z_init_a, z_movement_b), `cross_b` = decoder(z_init_b, z_movement_a).
- `frames` (N*2*K, pose_dim): K random frames per unit and copy; `frames_mean`, `frames_logvar`,
  `frames_recon`: their trip through the initial-pose VAE.

Codes are sampled (reparameterised) in training and taken at their means in evaluation.

By default (`fused_pairs`) the two copies go through each encoder as one batch, and the decoded
units that the enabled terms read (declared in their `reads`) through the pose decoder as one
batch; `DecompositionOutputs` describes the layout. The maths is the same as one call per copy and
per decode, only the order in which the codes' noise is drawn differs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from datamodules.errors import D2MError
from lightning_modules.config import DecompositionConfig, typed
from lightning_modules.lazy_outputs import LazyOutputs
from lightning_modules.losses import build_terms, needed_networks, weighted_sum
from lightning_modules.networks.decomposition import build_decomposition_networks
from lightning_modules.schedules import scheduler_config

__all__ = ["DECODE_GROUPS", "DecompositionModule", "DecompositionOutputs", "decode_plan", "joint_error_px",
           "joint_speed_px"]

NETWORKS = ("initp_enc", "initp_dec", "movement_enc", "stdp_dec")
# The pose decoder's outputs, in the groups the fused forward pass decodes together.
DECODE_GROUPS = {"recon": ("recon_a", "recon_b"), "cross": ("cross_a", "cross_b")}
# Which copy's z_init and which copy's z_movement each decoded unit is built from.
DECODE_CODES = {"recon_a": ("a", "a"), "recon_b": ("b", "b"), "cross_a": ("a", "b"), "cross_b": ("b", "a")}


def _plain(x):
    """Hyper-parameters as plain Python values, so checkpoints reload without unpickling numpy or OmegaConf."""
    if x is None:
        return None
    if isinstance(x, DictConfig):
        return OmegaConf.to_container(x, resolve=True)
    if hasattr(x, "tolist"):
        return x.tolist()
    return x


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


def _reparameterise(mean: torch.Tensor, logvar: torch.Tensor, sample: bool) -> torch.Tensor:
    if not sample:
        return mean
    return mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)


def decode_plan(terms: Mapping[str, object]) -> tuple[str, ...]:
    """The decode groups (keys of `DECODE_GROUPS`) whose outputs the terms declare in `reads`.

    A term without a `reads` declaration adds nothing to the plan; whatever it reads is still
    computed, only in a call of its own.
    """
    read = {name for t in terms.values() for name in getattr(t, "reads", ())}
    return tuple(g for g, names in DECODE_GROUPS.items() if read & set(names))


class DecompositionOutputs(LazyOutputs):
    """The step's forward pass, computed lazily: each named tensor is built the first time it is read.

    With `fused_pairs` (the default) the two jittered copies share every network call: the movement
    encoder and the initial-pose encoder read `cat([pose_a, pose_b])` as one batch of 2N and their
    rows are split afterwards, and the first read of any decoded unit (`recon_*` or `cross_*`) runs the
    pose decoder once over all the decode groups in `decodes` (the groups that the enabled terms
    read), as one batch of 2N per group, and splits the result. Every sample's computation is
    independent of the other rows' (no batch statistics anywhere), so the maths is that of one call
    per copy and per decode; only the matrix shapes change, and larger products run nearer the
    matmul peak with fewer, larger operations per recurrent step. A group outside `decodes` that is
    read anyway (the evaluation reads `recon_a` whatever the terms) is decoded on its own when read.
    Without `fused_pairs` each copy and each decode is its own call (the straightforward layout).
    """

    kind = "decomposition forward pass"

    def __init__(self, nets: Mapping[str, nn.Module], batch: Mapping[str, torch.Tensor], sample: bool,
                 initial_pose_frames: int, generator: torch.Generator | None = None, fused_pairs: bool = True,
                 decodes: Iterable[str] = tuple(DECODE_GROUPS)):
        self.nets = nets
        self.sample = sample
        self.k = int(initial_pose_frames)
        self.generator = generator
        self.fused_pairs = bool(fused_pairs)
        self.decodes = tuple(g for g in DECODE_GROUPS if g in set(decodes))
        super().__init__()
        self._values.update(pose_a=batch["pose_a"], pose_b=batch["pose_b"])
        for c in ("a", "b"):
            for key in ("movement_mean", "movement_logvar", "z_movement"):
                self._producers[f"{key}_{c}"] = lambda c=c: self._encode("movement", c)
            for key in ("init_mean", "init_logvar", "z_init"):
                self._producers[f"{key}_{c}"] = lambda c=c: self._encode("init", c)
        for group, names in DECODE_GROUPS.items():
            for name in names:
                self._producers[name] = lambda group=group, name=name: self._decode_group(group, name)
        for key in ("frames", "frames_mean", "frames_logvar", "frames_recon"):
            self._producers[key] = self._frames

    def _encode(self, code: str, c: str) -> None:
        """`code` "movement" (the whole unit) or "init" (its first frame) for copy `c`, or for both copies."""
        net = self.nets["movement_enc" if code == "movement" else "initp_enc"]

        def inputs(poses: torch.Tensor) -> torch.Tensor:
            return poses if code == "movement" else poses[:, 0]

        if self.fused_pairs:
            copies = ("a", "b")
            mean, logvar = net(inputs(torch.cat([self["pose_a"], self["pose_b"]], dim=0)))
            z = _reparameterise(mean, logvar, self.sample)
            parts = zip(*(t.chunk(2, dim=0) for t in (mean, logvar, z)))
        else:
            copies = (c,)
            mean, logvar = net(inputs(self[f"pose_{c}"]))
            parts = [(mean, logvar, _reparameterise(mean, logvar, self.sample))]
        for copy, (m, lv, z) in zip(copies, parts):
            self._values.update({f"{code}_mean_{copy}": m, f"{code}_logvar_{copy}": lv, f"z_{code}_{copy}": z})

    def _decode_group(self, group: str, name: str) -> None:
        """The pose decoder on the codes of `name`, or (fused) on every planned group at once."""
        length = self["pose_a"].shape[1]
        if not self.fused_pairs:
            i, m = DECODE_CODES[name]
            self._values[name] = self.nets["stdp_dec"](self[f"z_init_{i}"], self[f"z_movement_{m}"], length)
            return
        names = [n for g in (self.decodes if group in self.decodes else (group,)) for n in DECODE_GROUPS[g]]
        z_init = torch.cat([self[f"z_init_{DECODE_CODES[n][0]}"] for n in names], dim=0)
        z_movement = torch.cat([self[f"z_movement_{DECODE_CODES[n][1]}"] for n in names], dim=0)
        decoded = self.nets["stdp_dec"](z_init, z_movement, length).chunk(len(names), dim=0)
        self._values.update(zip(names, decoded))

    def _frames(self) -> None:
        poses = torch.cat([self["pose_a"], self["pose_b"]], dim=0)  # (2N, T, D)
        n, t, d = poses.shape
        idx = torch.randint(0, t, (n, self.k), generator=self.generator,
                            device="cpu" if self.generator is not None else poses.device).to(poses.device)
        frames = poses.gather(1, idx.unsqueeze(-1).expand(-1, -1, d)).reshape(n * self.k, d)
        mean, logvar = self.nets["initp_enc"](frames)
        recon = self.nets["initp_dec"](_reparameterise(mean, logvar, self.sample))
        self._values.update({"frames": frames, "frames_mean": mean, "frames_logvar": logvar,
                             "frames_recon": recon})


class DecompositionModule(pl.LightningModule):
    """The decomposition VAE's training logic; the networks are plain modules named as in the original.

    `config` is the `decomposition` config block as a plain dict (missing keys take the defaults of
    `DecompositionConfig`); `pose_mean` / `pose_std` (pose_dim numbers each) turn normalised errors
    into pixels for the reported reconstruction errors.
    """

    monitor = "val/loss"
    monitor_mode = "min"

    def __init__(self, config: dict | None = None, pose_dim: int = 28, pose_mean: list | None = None,
                 pose_std: list | None = None):
        super().__init__()
        config = _plain(config) or {}
        pose_mean, pose_std = _plain(pose_mean), _plain(pose_std)
        self.save_hyperparameters()
        self.cfg: DecompositionConfig = typed(DecompositionConfig, config, "decomposition")
        self.pose_dim = int(pose_dim)
        self.terms = build_terms("decomposition", self.cfg.losses)
        if not self.terms:
            raise D2MError("decomposition.losses: every loss term is switched off; enable at least one")
        extra = needed_networks(self.terms)
        if extra:
            raise D2MError(f"decomposition loss terms ask for networks it does not have: {sorted(extra)}")
        for name, net in build_decomposition_networks(self.cfg, pose_dim).items():
            setattr(self, name, net)
        mean = torch.zeros(pose_dim) if pose_mean is None else torch.as_tensor(pose_mean, dtype=torch.float32)
        std = torch.ones(pose_dim) if pose_std is None else torch.as_tensor(pose_std, dtype=torch.float32)
        if mean.shape != (pose_dim,) or std.shape != (pose_dim,):
            raise D2MError(f"pose_mean and pose_std must have {pose_dim} numbers each, "
                           f"got {tuple(mean.shape)} and {tuple(std.shape)}")
        self.register_buffer("pose_mean", mean, persistent=False)
        self.register_buffer("pose_std", std, persistent=False)
        self.decodes = decode_plan(self.terms)
        self.test_report: dict = {}

    @property
    def networks(self) -> nn.ModuleDict:
        """The four networks by their original names (a view; they are registered as attributes)."""
        return nn.ModuleDict({name: getattr(self, name) for name in NETWORKS})

    def outputs(self, batch: Mapping[str, torch.Tensor], sample: bool | None = None,
                generator: torch.Generator | None = None) -> DecompositionOutputs:
        """The lazy forward pass over a batch; codes are sampled when `sample` (default: in training)."""
        return DecompositionOutputs(self.networks, batch, self.training if sample is None else sample,
                                    self.cfg.initial_pose_frames, generator, fused_pairs=self.cfg.fused_pairs,
                                    decodes=self.decodes)

    def reconstruct(self, poses: torch.Tensor) -> torch.Tensor:
        """Normalised units (N, T, pose_dim) rebuilt from their posterior means (no sampling)."""
        z_m, _ = self.movement_enc(poses)
        z_i, _ = self.initp_enc(poses[:, 0])
        return self.stdp_dec(z_i, z_m, poses.shape[1])

    def forward(self, poses: torch.Tensor) -> torch.Tensor:
        return self.reconstruct(poses)

    # -- training -------------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        out = self.outputs(batch, sample=True)
        total, parts = weighted_sum(self.terms, "generator", out, self.networks, int(self.global_step))
        n = batch["pose_a"].shape[0]
        for name, value in parts.items():
            self.log(f"train/loss/{name}", value, batch_size=n)
        for name, t in self.terms.items():
            if t.cfg.warmup_slope > 0:
                self.log(f"train/weight/{name}", t.weight_at(int(self.global_step)), batch_size=n)
        self.log("train/loss", total.detach(), prog_bar=True, batch_size=n)
        if "recon_a" in out.computed:  # free when a term decoded it: the curve an overfitting check reads
            with torch.no_grad():
                px = joint_error_px(out["recon_a"], batch["pose_a"], self.pose_mean, self.pose_std).mean()
            self.log("train/recon_px", px, batch_size=n)
        return total

    def _eval_step(self, batch, batch_idx: int, stage: str) -> dict[str, torch.Tensor]:
        """Loss at the terms' full weights (warm-ups ignored, so epochs compare) and pixel errors."""
        gen = torch.Generator().manual_seed(batch_idx)  # the same random frames at every evaluation
        out = self.outputs(batch, sample=False, generator=gen)
        n = batch["pose_a"].shape[0]
        total = sum(float(t.cfg.weight) * t.compute("generator", out, self.networks) for t in self.terms.values())
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
        o = self.cfg.optim
        opt = torch.optim.Adam(self.parameters(), lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)
        schedule = scheduler_config(opt, o)
        return opt if schedule is None else {"optimizer": opt, "lr_scheduler": schedule}
