"""Composition term: KL divergence of the dance-code and movement-code posteriors from N(0, I).

Generation samples z_dance from the music encoder's posterior and decodes movement codes from it;
keeping those posteriors near the prior keeps sampling well-behaved and lets the real-dance and
music paths share one code space. It covers z_dance from the dance and from the music, and the
movement codes decoded from the dance's z_dance.
"""

import torch

from lightning_modules.losses.base import LossTerm, register
from lightning_modules.losses.decomposition_kl import gaussian_kl


@register
class CompositionKL(LossTerm):
    name = "kl"
    model = "composition"

    def compute(self, step, out, nets) -> torch.Tensor:
        return (
            gaussian_kl(out["dance_mean"], out["dance_logvar"])
            + gaussian_kl(out["music_mean"], out["music_logvar"])
            + gaussian_kl(out["dance_movement_mean"], out["dance_movement_logvar"])
        )
