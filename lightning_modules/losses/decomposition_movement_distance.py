"""Decomposition term: the two copies' movement codes (their means) should be the same (L1).

It states directly what cross reconstruction asks for indirectly: a shifted copy moves the same way.
"""

import torch

from lightning_modules.losses.base import LossTerm, register


@register
class MovementDistance(LossTerm):
    name = "movement_distance"
    model = "decomposition"
    reads = ("movement_mean_a", "movement_mean_b")  # the forward-pass outputs `compute` reads

    def compute(self, step, out, nets) -> torch.Tensor:
        return (out["movement_mean_a"] - out["movement_mean_b"]).abs().mean()
