"""Composition term: KL divergence of the dance path's posteriors from N(0, I).

It covers z_dance from the real dance (dance encoder) and the movement codes decoded from it: the
auto-encoding path's codes stay near the prior, so sampling z_dance at generation lands where the
dance decoder has learned to decode. The music path's KL is its own term (`music_kl`): the original
computed and logged it but did not optimise it. Each KL is reduced as `kl_reduction` says.
"""

import torch

from lightning_modules.losses.base import LossTerm, register
from lightning_modules.losses.decomposition_kl import gaussian_kl


@register
class CompositionKL(LossTerm):
    name = "kl"
    model = "composition"
    # the forward-pass outputs `compute` reads
    reads = ("dance_mean", "dance_logvar", "dance_movement_mean", "dance_movement_logvar")

    def compute(self, step, out, nets) -> torch.Tensor:
        return path_kl(out, "dance", self.option("kl_reduction", "sum"))


def path_kl(out, path: str, reduction: str) -> torch.Tensor:
    """KL of one path's z_dance (`<path>_mean/_logvar`) plus that of the movement codes decoded from it."""
    return (gaussian_kl(out[f"{path}_mean"], out[f"{path}_logvar"], reduction)
            + gaussian_kl(out[f"{path}_movement_mean"], out[f"{path}_movement_logvar"], reduction))
