"""Decomposition term: each jittered copy of a unit is rebuilt from its own codes (L1).

The auto-encoding path that makes z_init and z_movement carry the unit at all.
"""

import torch

from lightning_modules.losses.base import LossTerm, combine_pair, register


@register
class PoseReconstruction(LossTerm):
    name = "pose_reconstruction"
    model = "decomposition"
    trains = ("initp_enc", "movement_enc", "stdp_dec")  # the networks its gradient reaches
    reads = ("recon_a", "recon_b", "pose_a", "pose_b")  # the forward-pass outputs `compute` reads

    def compute(self, step, out, nets) -> torch.Tensor:
        a = (out["recon_a"] - out["pose_a"]).abs().mean()
        b = (out["recon_b"] - out["pose_b"]).abs().mean()
        return combine_pair(a, b, self.option("pair_reduction", "sum"))  # summed in the original
