"""Composition term: movement codes decoded from the music must pass as a real dance's (adversarial).

The movement discriminator reads the L decoded movement codes (each unit's mean, then its
log-variance) with the music's time-mean features, so it judges whether those movements fit that
music. Real codes are decoded from the real dance's z_dance, fake ones from the music's z_dance.
"""

import torch

from lightning_modules.losses.base import LossTerm, register
from lightning_modules.losses.composition_dance_code_alignment import adversarial
from lightning_modules.networks.composition import flatten_codes


@register
class MovementAlignment(LossTerm):
    name = "movement_alignment"
    model = "composition"
    steps = ("discriminator", "generator")
    needs = ("danceAud_dis",)
    reads = ("dance_movement_mean", "dance_movement_logvar", "music_movement_mean",
             "music_movement_logvar", "audio")  # the forward-pass outputs `compute` reads

    def compute(self, step, out, nets) -> torch.Tensor:
        units = out["dance_movement_mean"].shape[0] // out["audio"].shape[0]
        real = flatten_codes(out["dance_movement_mean"], out["dance_movement_logvar"], units)
        fake = flatten_codes(out["music_movement_mean"], out["music_movement_logvar"], units)
        return adversarial(step, nets["danceAud_dis"], real, fake, out["audio"])
