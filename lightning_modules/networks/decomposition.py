"""The decomposition VAE's networks: a dance unit becomes an initial pose code and a movement code.

Layouts and parameter names follow the original release (DESIGN.md section 9) so that its
`Stage1.ckpt` state dicts load key for key; every width comes from `DecompositionConfig`. The
composition model reuses `MovementEncoder` and `PoseDecoder` unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from lightning_modules.networks.layers import GRU, MLP, expand_initial_state, head

__all__ = [
    "InitialPoseDecoder",
    "InitialPoseEncoder",
    "MovementEncoder",
    "PoseDecoder",
    "build_decomposition_networks",
]


class InitialPoseEncoder(nn.Module):
    """One pose (N, pose_dim) to the mean and log-variance of z_init: MLP with LayerNorm, LeakyReLU."""

    def __init__(self, pose_dim: int = 28, hidden: int = 64, z_dim: int = 10):
        super().__init__()
        self.enc = MLP([pose_dim, hidden, hidden], act="leaky_relu", plain_last=False)
        self.mean = head(hidden, z_dim)
        self.std = head(hidden, z_dim)  # named `std` in the original; it yields the log-variance

    def forward(self, pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.enc(pose)
        return self.mean(h), self.std(h)


class InitialPoseDecoder(nn.Module):
    """z_init (N, z_dim) back to a pose (N, pose_dim)."""

    def __init__(self, pose_dim: int = 28, hidden: int = 64, z_dim: int = 10):
        super().__init__()
        self.dec = MLP([z_dim, hidden, hidden, pose_dim], act="leaky_relu", plain_last=True)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.dec(z)


class MovementEncoder(nn.Module):
    """A unit's poses (N, T, pose_dim) to the mean and log-variance of z_movement.

    A bidirectional GRU from a learned initial state; the forward direction's last output and the
    backward direction's first output (each has then read the whole unit) are concatenated.
    """

    def __init__(self, pose_dim: int = 28, hidden: int = 1024, z_dim: int = 512):
        super().__init__()
        self.hidden = hidden
        self.init_h = nn.Parameter(torch.zeros(2, 1, hidden))  # learned; zero start is a neutral state
        self.recurrent = GRU(pose_dim, hidden, bidirectional=True)
        self.mean = head(2 * hidden, z_dim)
        self.std = head(2 * hidden, z_dim)

    def forward(self, poses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, _ = self.recurrent(poses, expand_initial_state(self.init_h, poses.shape[0]))
        h = torch.cat([out[:, -1, : self.hidden], out[:, 0, self.hidden :]], dim=1)
        return self.mean(h), self.std(h)


class PoseDecoder(nn.Module):
    """z_init and z_movement to a unit of poses (N, length, pose_dim).

    `z2init` maps [z_init, z_movement] to the GRU's initial state; the GRU reads z_movement at every
    step; `pose_g` (Linear, LayerNorm, ReLU, Linear) turns each output into a pose. Because the input
    is the same at every step, `fast_recurrence` projects it once (see `layers.GRU`).
    """

    def __init__(self, init_dim: int = 10, movement_dim: int = 512, hidden: int = 1024, pose_dim: int = 28,
                 fast_recurrence: bool = True):
        super().__init__()
        self.fast_recurrence = fast_recurrence
        self.z2init = head(init_dim + movement_dim, hidden)
        self.recurrent = GRU(movement_dim, hidden)
        self.pose_g = MLP([hidden, hidden, pose_dim], act="relu", plain_last=True)

    def forward(self, z_init: torch.Tensor, z_movement: torch.Tensor, length: int = 32) -> torch.Tensor:
        h0 = self.z2init(torch.cat([z_init, z_movement], dim=1)).unsqueeze(0)
        out = self.recurrent.forward_constant(z_movement, h0, length, fast=self.fast_recurrence)
        return self.pose_g(out)


def build_decomposition_networks(cfg, pose_dim: int = 28) -> nn.ModuleDict:
    """The four networks under the original checkpoint's names, sized by a `DecompositionConfig`."""
    return nn.ModuleDict(
        {
            "initp_enc": InitialPoseEncoder(pose_dim, cfg.init_hidden, cfg.init_dim),
            "initp_dec": InitialPoseDecoder(pose_dim, cfg.init_hidden, cfg.init_dim),
            "movement_enc": MovementEncoder(pose_dim, cfg.hidden, cfg.movement_dim),
            "stdp_dec": PoseDecoder(cfg.init_dim, cfg.movement_dim, cfg.hidden, pose_dim,
                                    fast_recurrence=bool(getattr(cfg, "fast_recurrence", True))),
        }
    )
