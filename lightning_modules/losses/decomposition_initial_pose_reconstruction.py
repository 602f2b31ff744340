"""Decomposition term: random single frames go through the initial-pose VAE and come back (L1).

The pose decoder only ever sees a unit's first frame as its initial pose; training the initial-pose
encoder and decoder on frames from anywhere in the unit (`initial_pose_frames` per unit and copy)
gives them the whole pose distribution, which generation needs when a unit starts from the last
pose of the one before.
"""

import torch

from lightning_modules.losses.base import LossTerm, register


@register
class InitialPoseReconstruction(LossTerm):
    name = "initial_pose_reconstruction"
    model = "decomposition"
    trains = ("initp_enc", "initp_dec")  # the networks its gradient reaches
    reads = ("frames", "frames_recon")  # the forward-pass outputs `compute` reads

    def compute(self, step, out, nets) -> torch.Tensor:
        return (out["frames_recon"] - out["frames"]).abs().mean()
