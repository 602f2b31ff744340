"""Composition term: the dance auto-encoder must give back the movement encoder's codes.

L1 between the movement codes decoded from the dance's z_dance and those the movement encoder gave
for the real units, on the means and on the log-variances: the latent half of the dance
auto-encoding path that teaches the dance decoder to produce movement codes.
"""

import torch
import torch.nn.functional as F

from lightning_modules.losses.base import LossTerm, register


@register
class CompositionMovementReconstruction(LossTerm):
    name = "movement_reconstruction"
    model = "composition"
    reconstruction = True  # part of the validation loss that selects checkpoints
    # the forward-pass outputs `compute` reads
    reads = ("dance_movement_mean", "dance_movement_logvar", "movement_mean", "movement_logvar")

    def compute(self, step, out, nets) -> torch.Tensor:
        return (F.l1_loss(out["dance_movement_mean"], out["movement_mean"])
                + F.l1_loss(out["dance_movement_logvar"], out["movement_logvar"]))
