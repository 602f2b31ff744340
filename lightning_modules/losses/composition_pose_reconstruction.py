"""Composition term: the poses decoded from the dance auto-encoder must match the real dance.

The decoded movement codes go through the (fine-tuned) pose decoder, each unit starting from its
real first pose's z_init; L1 against the real units. It grounds the latent path in poses, which is
what generation finally outputs.
"""

import torch
import torch.nn.functional as F

from lightning_modules.losses.base import LossTerm, register


@register
class CompositionPoseReconstruction(LossTerm):
    name = "pose_reconstruction"
    model = "composition"
    reconstruction = True  # part of the validation loss that selects checkpoints
    reads = ("pose_reconstruction", "unit_poses")  # the forward-pass outputs `compute` reads

    def compute(self, step, out, nets) -> torch.Tensor:
        return F.l1_loss(out["pose_reconstruction"], out["unit_poses"])
