"""Composition term: KL divergence of the dance path's posteriors from N(0, I).

It covers z_dance from the real dance (dance encoder) and the movement codes decoded from it: the
auto-encoding path's codes stay near the prior, so sampling z_dance at generation lands where the
dance decoder has learned to decode. The music path's KL is its own term (`music_kl`): the original
computed and logged it but did not optimise it. Each KL is reduced as `kl_reduction` says.
"""

import torch

from lightning_modules.losses.base import LossTerm, register
from lightning_modules.losses.decomposition_kl import gaussian_kl


def path_reads(path: str) -> tuple[str, ...]:
    return (f"{path}_mean", f"{path}_logvar", f"{path}_movement_mean", f"{path}_movement_logvar")


@register
class CompositionKL(LossTerm):
    name = "kl"
    model = "composition"
    path = "dance"  # whose posteriors: the dance path's here, the music path's in `music_kl`
    reads = path_reads(path)  # the forward-pass outputs `compute` reads

    def compute(self, step, out, nets) -> torch.Tensor:
        """KL of the path's z_dance plus that of the movement codes decoded from it."""
        p, reduction = self.path, self.option("kl_reduction", "sum")
        return (gaussian_kl(out[f"{p}_mean"], out[f"{p}_logvar"], reduction)
                + gaussian_kl(out[f"{p}_movement_mean"], out[f"{p}_movement_logvar"], reduction))
