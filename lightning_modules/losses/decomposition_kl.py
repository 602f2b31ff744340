"""Decomposition term: KL divergence of the z_init and z_movement posteriors from N(0, I).

It makes both code spaces samplable, which generation relies on (an initial pose drawn in z_init
space; movement codes produced by the composition model). Its weight is usually ramped up by the
sigmoid warm-up of `LossTermConfig`, so reconstruction is learned first.
"""

import torch

from lightning_modules.losses.base import LossTerm, register


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)), averaged over batch and code dimensions.

    Averaging over dimensions keeps the term's scale independent of the code widths, so one weight
    serves every size preset.
    """
    return -0.5 * torch.mean(1.0 + logvar - mean.pow(2) - logvar.exp())


@register
class DecompositionKL(LossTerm):
    name = "kl"
    model = "decomposition"
    reads = tuple(f"{k}_{c}" for c in "ab" for k in ("init_mean", "init_logvar", "movement_mean", "movement_logvar"))

    def compute(self, step, out, nets) -> torch.Tensor:
        total = 0.0
        for c in ("a", "b"):
            total = total + gaussian_kl(out[f"init_mean_{c}"], out[f"init_logvar_{c}"])
            total = total + gaussian_kl(out[f"movement_mean_{c}"], out[f"movement_logvar_{c}"])
        return 0.5 * total
