"""Decomposition term: KL divergence of the z_init and z_movement posteriors from N(0, I).

It makes both code spaces samplable, which generation relies on (an initial pose drawn in z_init
space; movement codes produced by the composition model). Its weight is usually ramped up by the
sigmoid warm-up of `LossTermConfig`, so reconstruction is learned first.
"""

import torch

from common.errors import D2MError
from lightning_modules.losses.base import LossTerm, combine_pair, register


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) of codes (N, D), one number for the batch.

    `sum` (the original release): `-0.5 * sum over the D code dimensions of (1 + logvar - mean^2 -
    exp(logvar))`, averaged over the N rows, so the term grows with the code width. `mean` averages
    over the dimensions too, which keeps the term's scale independent of the widths (one weight for
    every size preset) but gives a 512-wide code 1/512 of the original's weight.
    """
    per_dim = 1.0 + logvar - mean.pow(2) - logvar.exp()
    if reduction == "sum":
        return -0.5 * per_dim.sum(dim=-1).mean()
    if reduction == "mean":
        return -0.5 * per_dim.mean()
    raise D2MError(f"kl_reduction: unknown value '{reduction}'; choices: sum, mean")


@register
class DecompositionKL(LossTerm):
    name = "kl"
    model = "decomposition"
    trains = ("initp_enc", "movement_enc")  # the networks its gradient reaches
    reads = tuple(f"{k}_{c}" for c in "ab" for k in ("init_mean", "init_logvar", "movement_mean", "movement_logvar"))

    def compute(self, step, out, nets) -> torch.Tensor:
        reduction = self.option("kl_reduction", "sum")
        per_copy = [gaussian_kl(out[f"init_mean_{c}"], out[f"init_logvar_{c}"], reduction)
                    + gaussian_kl(out[f"movement_mean_{c}"], out[f"movement_logvar_{c}"], reduction)
                    for c in ("a", "b")]
        return combine_pair(*per_copy, self.option("pair_reduction", "sum"))
