"""`DecompositionVAE`: the decomposition model, its four networks and its forward pass written out.

A plain `nn.Module` (no Lightning): `DecompositionModule` trains it, `CompositionGAN` reuses its
networks. `forward(batch, wants)` computes the named tensors in `wants` (default: all of them) and
what they depend on, with an `if` per product, so what nobody reads is never computed. Names
produced (suffix `_a` / `_b` = the two jittered copies of a unit):

- `pose_a`, `pose_b`: the input units (N, T, pose_dim), normalised.
- `movement_mean_*`, `movement_logvar_*`, `z_movement_*`: the movement encoder's posterior and sample.
- `init_mean_*`, `init_logvar_*`, `z_init_*`: the initial-pose encoder on each copy's first frame.
- `recon_*`: the pose decoder on the copy's own codes.
- `cross_a` = decoder(z_init_a, z_movement_b), `cross_b` = decoder(z_init_b, z_movement_a).
- `frames` (N*2*K, pose_dim): K random frames per unit and copy; `frames_mean`, `frames_logvar`,
  `frames_recon`: their trip through the initial-pose VAE.

Codes are sampled (reparameterised) in training and taken at their means in evaluation.

With `fused_pairs` (the default) the two copies go through each encoder as one batch of 2N and
their rows are split afterwards, and every decoded unit asked for goes through the pose decoder in
one call (2N rows per decode group). Every sample's computation is independent of the other rows'
(no batch statistics anywhere), so the maths is that of one call per copy and per decode; only the
matrix shapes change, and larger products run nearer the matmul peak. Without `fused_pairs` each
copy and each decode is its own call (the straightforward layout). Only the order in which the
codes' noise is drawn differs between the two.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import nn

from lightning_modules.config import DecompositionConfig
from lightning_modules.networks.decomposition import build_decomposition_networks

__all__ = ["DECODE_CODES", "DECODE_GROUPS", "DECOMPOSITION_NETWORKS", "FRAMES", "OUTPUTS", "DecompositionVAE",
           "reparameterise"]

DECOMPOSITION_NETWORKS = ("initp_enc", "initp_dec", "movement_enc", "stdp_dec")  # the original's names
# The pose decoder's outputs, in the groups the fused forward pass decodes together.
DECODE_GROUPS = {"recon": ("recon_a", "recon_b"), "cross": ("cross_a", "cross_b")}
# Which copy's z_init and which copy's z_movement each decoded unit is built from.
DECODE_CODES = {"recon_a": ("a", "a"), "recon_b": ("b", "b"), "cross_a": ("a", "b"), "cross_b": ("b", "a")}
FRAMES = ("frames", "frames_mean", "frames_logvar", "frames_recon")
_ENCODED = {code: frozenset(f"{k}_{c}" for c in "ab" for k in keys) for code, keys in
            {"movement": ("movement_mean", "movement_logvar", "z_movement"),
             "init": ("init_mean", "init_logvar", "z_init")}.items()}
# Every name the forward pass can produce besides its inputs.
OUTPUTS = frozenset({*FRAMES, *_ENCODED["movement"], *_ENCODED["init"], *DECODE_CODES})


def reparameterise(mean: torch.Tensor, logvar: torch.Tensor, sample: bool) -> torch.Tensor:
    """A sample of N(mean, exp(logvar)) when `sample`, else the mean."""
    if not sample:
        return mean
    return mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)


class DecompositionVAE(nn.Module):
    """The initial-pose VAE and the movement VAE sharing one pose decoder, sized by a `DecompositionConfig`.

    The networks are attributes under the original release's names (`initp_enc`, `initp_dec`,
    `movement_enc`, `stdp_dec`), so its checkpoint loads network for network.
    """

    def __init__(self, cfg: DecompositionConfig, pose_dim: int = 28):
        super().__init__()
        self.cfg = cfg
        self.pose_dim = int(pose_dim)
        for name, net in build_decomposition_networks(cfg, self.pose_dim).items():
            setattr(self, name, net)

    @property
    def networks(self) -> nn.ModuleDict:
        """The four networks by their original names (a view; they are registered as attributes)."""
        return nn.ModuleDict({name: getattr(self, name) for name in DECOMPOSITION_NETWORKS})

    def forward(self, batch: Mapping[str, torch.Tensor], wants: Iterable[str] | None = None,
                sample: bool | None = None, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """The named tensors of `wants` (default: every one) and what they need, from `pose_a` / `pose_b`.

        Codes are sampled when `sample` (default: in training mode); `generator` fixes the random frames.
        """
        sample = self.training if sample is None else sample
        wants = OUTPUTS if wants is None else set(wants)
        out: dict[str, torch.Tensor] = {"pose_a": batch["pose_a"], "pose_b": batch["pose_b"]}
        decodes = [n for names in DECODE_GROUPS.values() if wants & set(names) for n in names]
        if decodes or wants & _ENCODED["movement"]:
            self._encode(out, "movement", sample)
        if decodes or wants & _ENCODED["init"]:
            self._encode(out, "init", sample)
        if decodes:
            self._decode(out, decodes)
        if wants & set(FRAMES):
            self._frames(out, sample, generator)
        return out

    def _encode(self, out: dict, code: str, sample: bool) -> None:
        """`code` "movement" (the whole unit) or "init" (its first frame) of both copies."""
        net = self.movement_enc if code == "movement" else self.initp_enc

        def inputs(poses: torch.Tensor) -> torch.Tensor:
            return poses if code == "movement" else poses[:, 0]

        if self.cfg.fused_pairs:
            mean, logvar = net(inputs(torch.cat([out["pose_a"], out["pose_b"]], dim=0)))
            z = reparameterise(mean, logvar, sample)
            parts = list(zip(*(t.chunk(2, dim=0) for t in (mean, logvar, z))))
        else:
            parts = []
            for c in ("a", "b"):
                mean, logvar = net(inputs(out[f"pose_{c}"]))
                parts.append((mean, logvar, reparameterise(mean, logvar, sample)))
        for copy, (m, lv, z) in zip(("a", "b"), parts):
            out.update({f"{code}_mean_{copy}": m, f"{code}_logvar_{copy}": lv, f"z_{code}_{copy}": z})

    def _decode(self, out: dict, names: list[str]) -> None:
        """The pose decoder on the codes of each decoded unit in `names`: one call, or one per unit."""
        length = out["pose_a"].shape[1]
        if not self.cfg.fused_pairs:
            for name in names:
                i, m = DECODE_CODES[name]
                out[name] = self.stdp_dec(out[f"z_init_{i}"], out[f"z_movement_{m}"], length)
            return
        z_init = torch.cat([out[f"z_init_{DECODE_CODES[n][0]}"] for n in names], dim=0)
        z_movement = torch.cat([out[f"z_movement_{DECODE_CODES[n][1]}"] for n in names], dim=0)
        out.update(zip(names, self.stdp_dec(z_init, z_movement, length).chunk(len(names), dim=0)))

    def _frames(self, out: dict, sample: bool, generator: torch.Generator | None) -> None:
        poses = torch.cat([out["pose_a"], out["pose_b"]], dim=0)  # (2N, T, D)
        n, t, d = poses.shape
        k = int(self.cfg.initial_pose_frames)
        idx = torch.randint(0, t, (n, k), generator=generator,
                            device="cpu" if generator is not None else poses.device).to(poses.device)
        frames = poses.gather(1, idx.unsqueeze(-1).expand(-1, -1, d)).reshape(n * k, d)
        mean, logvar = self.initp_enc(frames)
        out.update(frames=frames, frames_mean=mean, frames_logvar=logvar,
                   frames_recon=self.initp_dec(reparameterise(mean, logvar, sample)))

    def reconstruct(self, poses: torch.Tensor) -> torch.Tensor:
        """Normalised units (N, T, pose_dim) rebuilt from their posterior means (no sampling)."""
        z_m, _ = self.movement_enc(poses)
        z_i, _ = self.initp_enc(poses[:, 0])
        return self.stdp_dec(z_i, z_m, poses.shape[1])
