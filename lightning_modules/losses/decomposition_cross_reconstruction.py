"""Decomposition term: one copy's initial pose with the other copy's movement code must rebuild it.

The two copies differ only by a pixel offset, so this holds only if the movement code carries no
position: position must come from z_init. This is what lets the composition model chain units.
"""

import torch

from lightning_modules.losses.base import LossTerm, combine_pair, register


@register
class CrossReconstruction(LossTerm):
    name = "cross_reconstruction"
    model = "decomposition"
    trains = ("initp_enc", "movement_enc", "stdp_dec")  # the networks its gradient reaches
    reads = ("cross_a", "cross_b", "pose_a", "pose_b")  # the forward-pass outputs `compute` reads

    def compute(self, step, out, nets) -> torch.Tensor:
        # cross_a = decoder(z_init of a, z_movement of b), and the reverse (DecompositionModule builds them)
        a = (out["cross_a"] - out["pose_a"]).abs().mean()
        b = (out["cross_b"] - out["pose_b"]).abs().mean()
        return combine_pair(a, b, self.option("pair_reduction", "sum"))  # summed in the original
