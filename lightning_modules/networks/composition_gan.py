"""`CompositionGAN`: the composition model, every network generation needs and its forward pass.

A plain `nn.Module` (no Lightning): `CompositionModule` trains it; `evaluation.generation` draws
dances from it. It holds the frozen style extractor, the four decomposition networks, the three core
composition networks and only the critics and the style regressor that the enabled loss terms ask
for, plus the data's normalisation statistics, so that a trained model alone turns normalised music
into normalised poses and back into pixels.

`forward(batch, wants)` computes the named tensors in `wants` (default: every one) and the products
they depend on, with an `if` per product, so what nobody reads is never computed. Names (L = units
per sequence, T = frames per unit; rows of per-unit tensors are sample-major, the L units of one
sample consecutive):

- `unit_poses` (B*L, T, P): the real units, normalised; `features` (B, L*T, F) the music and
  `audio` (B, F) its time-mean; `style` (B, S): the frozen extractor's style feature of the first
  `style_frames` frames.
- `movement_mean`, `movement_logvar` (B*L, M): the movement encoder on the real units (detached
  unless `finetune_movement_encoder`).
- `dance_mean`, `dance_logvar`, `dance_z` (B, D): z_dance of the real dance (dance encoder).
- `dance_movement_mean`, `dance_movement_logvar`, `dance_movement_z` (B*L, M): decoded from `dance_z`.
- `music_mean`, `music_logvar`, `music_z` (B, D): z_dance from the music (music-to-dance encoder).
- `music_movement_mean`, `music_movement_logvar` (B*L, M): decoded from `music_z`.
- `unit_z_init` (B*L, I): initial-pose encoder mean of each real unit's first frame.
- `pose_reconstruction` (B*L, T, P): the pose decoder on `unit_z_init` and `dance_movement_z`.

Codes are sampled (reparameterised) in training mode and taken at their means in evaluation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import nn

from common.errors import D2MError
from lightning_modules.config import CompositionConfig, DecompositionConfig, StyleExtractorConfig
from lightning_modules.networks.composition import OPTIONAL_NETWORKS, build_composition_networks, join_codes
from lightning_modules.networks.decomposition import build_decomposition_networks
from lightning_modules.networks.decomposition_vae import DECOMPOSITION_NETWORKS, reparameterise
from lightning_modules.networks.style_extractor import StyleExtractor

__all__ = ["FINETUNED", "FROZEN", "PRODUCED", "PRODUCTS", "STATISTICS", "CompositionGAN", "products_for"]

# Learn at lr * finetune_lr_scale (frozen when it is 0); the movement encoder only with
# `finetune_movement_encoder` (the original keeps it frozen and its codes detached).
FINETUNED = ("movement_enc", "stdp_dec")
FROZEN = ("initp_enc", "initp_dec")  # used as trained by the decomposition stage
# The data's normalisation statistics the model carries (buffers, not weights: the checkpoint's
# hyper-parameters rebuild them).
STATISTICS = ("pose_mean", "pose_std", "feature_mean", "feature_std")

# The forward pass's products: the names each computes, and the products it is computed from.
PRODUCTS: dict[str, tuple[str, ...]] = {
    "style": ("style",),
    "movement": ("movement_mean", "movement_logvar"),
    "dance": ("dance_mean", "dance_logvar", "dance_z"),
    "dance_movement": ("dance_movement_mean", "dance_movement_logvar", "dance_movement_z"),
    "music": ("music_mean", "music_logvar", "music_z"),
    "music_movement": ("music_movement_mean", "music_movement_logvar"),
    "initial": ("unit_z_init",),
    "poses": ("pose_reconstruction",),
}
DEPENDS: dict[str, tuple[str, ...]] = {
    "dance": ("movement",), "dance_movement": ("dance",), "music": ("style",), "music_movement": ("music",),
    "poses": ("dance_movement", "initial"),
}
INPUTS = ("unit_poses", "features", "audio")  # always present
_PRODUCT_OF = {name: product for product, names in PRODUCTS.items() for name in names}
PRODUCED = frozenset(_PRODUCT_OF)  # every name the forward pass can produce besides its inputs


def products_for(names: Iterable[str]) -> set[str]:
    """The products needed to produce `names`, their dependencies included."""
    todo = []
    for name in names:
        if name in INPUTS:
            continue
        if name not in _PRODUCT_OF:
            raise KeyError(f"the composition forward pass produces no '{name}'")
        todo.append(_PRODUCT_OF[name])
    needed: set[str] = set()
    while todo:
        product = todo.pop()
        if product not in needed:
            needed.add(product)
            todo.extend(DEPENDS.get(product, ()))
    return needed


def _vector(values, n: int, fill: float, name: str) -> torch.Tensor:
    if values is None:
        return torch.full((n,), fill)
    t = torch.as_tensor(values, dtype=torch.float32).reshape(-1)
    if t.shape != (n,):
        raise D2MError(f"{name} must have {n} numbers, got {t.numel()}")
    return t


class CompositionGAN(nn.Module):
    """Music to movement codes to poses; networks are attributes under the original release's names.

    Sized by the three config blocks and the data's shape: `feature_dim` (F), `num_classes` (the
    style extractor's head), `pose_dim` (P), `sequence_units` (L, which sizes the movement
    discriminator) and `unit_frames` (T). `optional` names the critics and the regressor to build
    (those the enabled loss terms need). `statistics` maps the names of `STATISTICS` to their values
    (missing: zero means, unit deviations).

    Which weights can learn is part of the model, because its forward pass depends on it: the
    style extractor and the initial-pose networks are frozen; the pose decoder (and the movement
    encoder with `finetune_movement_encoder`) learn when `finetune_lr_scale > 0`; a frozen movement
    encoder runs without a graph.
    """

    def __init__(self, cfg: CompositionConfig, decomposition_cfg: DecompositionConfig,
                 style_cfg: StyleExtractorConfig, feature_dim: int = 28, num_classes: int = 2, pose_dim: int = 28,
                 sequence_units: int = 3, unit_frames: int = 32, optional: Iterable[str] = OPTIONAL_NETWORKS,
                 statistics: Mapping[str, object] | None = None):
        super().__init__()
        self.cfg, self.decomposition_cfg, self.style_cfg = cfg, decomposition_cfg, style_cfg
        self.feature_dim, self.pose_dim = int(feature_dim), int(pose_dim)
        self.sequence_units, self.unit_frames = int(sequence_units), int(unit_frames)
        if self.sequence_units < 1 or self.unit_frames < 2:
            raise D2MError(f"composition needs sequence_units >= 1 and unit_frames >= 2, got "
                           f"{self.sequence_units} and {self.unit_frames}")

        # The style extractor: frozen, always in eval mode, in no optimiser.
        self.style_extractor = StyleExtractor(self.feature_dim, max(int(num_classes), 2), style_cfg)
        self.style_extractor.requires_grad_(False)
        self.style_extractor.eval()
        for name, net in build_decomposition_networks(decomposition_cfg, self.pose_dim).items():
            setattr(self, name, net)
        for name in FROZEN:
            getattr(self, name).requires_grad_(False)
        # Frozen networks are in no optimiser, so their weight gradients are not computed; a frozen
        # movement encoder also runs without a graph (its codes are detached, its backward is gone).
        self.movement_encoder_trained = cfg.finetune_lr_scale > 0 and cfg.finetune_movement_encoder
        self.finetuned = tuple(n for n in FINETUNED if cfg.finetune_lr_scale > 0
                               and (n != "movement_enc" or self.movement_encoder_trained))
        for name in FINETUNED:
            if name not in self.finetuned:
                getattr(self, name).requires_grad_(False)
        built = build_composition_networks(cfg, decomposition_cfg.movement_dim, self.style_extractor.style_dim,
                                           self.feature_dim, self.sequence_units, optional=optional)
        self.composition_network_names = tuple(built.keys())
        for name, net in built.items():
            setattr(self, name, net)

        statistics = statistics or {}
        for name in STATISTICS:
            n = self.pose_dim if name.startswith("pose") else self.feature_dim
            fill = 1.0 if name.endswith("std") else 0.0
            self.register_buffer(name, _vector(statistics.get(name), n, fill, name), persistent=False)

    @property
    def networks(self) -> nn.ModuleDict:
        """Every built network by its original name (a view; they are registered as attributes)."""
        names = DECOMPOSITION_NETWORKS + self.composition_network_names
        return nn.ModuleDict({name: getattr(self, name) for name in names})

    def has_network(self, name: str) -> bool:
        return name in self.composition_network_names or name in DECOMPOSITION_NETWORKS

    def train(self, mode: bool = True):
        """Keep the frozen style extractor in eval mode whatever the caller switches."""
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

    def forward(self, batch: Mapping[str, torch.Tensor], wants: Iterable[str] | None = None,
                sample: bool | None = None, generator: torch.Generator | None = None,
                given: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """The named tensors of `wants` (default: every one) and what they need, from `poses` and `features`.

        Codes are sampled when `sample` (default: in training mode); `generator` fixes the music
        noise. `given` supplies products already computed (the style step passes the movement
        codes and the style feature), which are not computed again.
        """
        poses, features = batch["poses"], batch["features"]
        if poses.dim() != 4:
            raise D2MError(f"composition batches need poses of shape (B, L, T, P), got {tuple(poses.shape)}")
        b, units, frames, pose_dim = poses.shape
        if units != self.sequence_units:
            raise D2MError(f"the composition model was built for sequences of {self.sequence_units} units "
                           f"(sequence_units) but the batch has {units}")
        sample = self.training if sample is None else sample
        need = products_for(PRODUCED if wants is None else wants)
        out: dict[str, torch.Tensor] = {"unit_poses": poses.reshape(b * units, frames, pose_dim),
                                        "features": features, "audio": features.mean(dim=1)}
        out.update(given or {})
        if "style" in need and "style" not in out:
            out["style"] = self.style_feature(features)
        if "movement" in need and "movement_mean" not in out:
            with torch.set_grad_enabled(torch.is_grad_enabled() and self.movement_encoder_trained):
                out["movement_mean"], out["movement_logvar"] = self.movement_enc(out["unit_poses"])
        if "dance" in need:
            mean, logvar = self.dance_enc(join_codes(out["movement_mean"], out["movement_logvar"], units))
            out.update(dance_mean=mean, dance_logvar=logvar, dance_z=reparameterise(mean, logvar, sample))
        if "dance_movement" in need:
            mean, logvar = self.dance_dec(out["dance_z"], units)
            out.update(dance_movement_mean=mean, dance_movement_logvar=logvar,
                       dance_movement_z=reparameterise(mean, logvar, sample))
        if "music" in need:
            mean, logvar = self.audstyle_enc(out["style"], generator=generator)
            out.update(music_mean=mean, music_logvar=logvar, music_z=reparameterise(mean, logvar, sample))
        if "music_movement" in need:
            out["music_movement_mean"], out["music_movement_logvar"] = self.dance_dec(out["music_z"], units)
        if "initial" in need:
            with torch.no_grad():
                out["unit_z_init"], _ = self.initp_enc(out["unit_poses"][:, 0])
        if "poses" in need:
            out["pose_reconstruction"] = self.stdp_dec(out["unit_z_init"], out["dance_movement_z"], frames)
        return out
