"""Composition term: KL divergence of the music path's posteriors from N(0, I).

z_dance from the music (music-to-dance encoder) and the movement codes decoded from it. The
original release computed and logged these but left them out of the optimised loss, so the term is
off in the `paper` preset; switched on, it asks the music encoder's posterior itself to match the
prior, one more ablation axis. Reduced as `kl_reduction` says.
"""

import torch

from lightning_modules.losses.base import LossTerm, register
from lightning_modules.losses.composition_kl import path_kl


@register
class CompositionMusicKL(LossTerm):
    name = "music_kl"
    model = "composition"
    # the forward-pass outputs `compute` reads
    reads = ("music_mean", "music_logvar", "music_movement_mean", "music_movement_logvar")

    def compute(self, step, out, nets) -> torch.Tensor:
        return path_kl(out, "music", self.option("kl_reduction", "sum"))
