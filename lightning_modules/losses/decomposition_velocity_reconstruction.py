"""Decomposition term: each copy's rebuilt unit moves as the copy does (L1 on frame-to-frame steps).

Not in the paper's objective (off in the `paper` preset). The pose L1 is dominated by where the body
is: a unit moves about 4 px a frame against a position spread of about 50 px, so a decoder that
holds the mean pose of the unit already scores most of what the pose term can give, and learns the
motion itself slowly (docs/training.md). This term puts the frame-to-frame displacement in the
objective directly, in the same normalised units as the pose term.
"""

import torch

from lightning_modules.losses.base import LossTerm, combine_pair, register


def step_error(recon: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of consecutive-frame steps, (N, T, D) against (N, T, D)."""
    return ((recon[:, 1:] - recon[:, :-1]) - (pose[:, 1:] - pose[:, :-1])).abs().mean()


@register
class VelocityReconstruction(LossTerm):
    name = "velocity_reconstruction"
    model = "decomposition"
    trains = ("initp_enc", "movement_enc", "stdp_dec")  # the networks its gradient reaches
    reads = ("recon_a", "recon_b", "pose_a", "pose_b")  # the forward-pass outputs `compute` reads

    def compute(self, step, out, nets) -> torch.Tensor:
        a = step_error(out["recon_a"], out["pose_a"])
        b = step_error(out["recon_b"], out["pose_b"])
        return combine_pair(a, b, self.option("pair_reduction", "sum"))
