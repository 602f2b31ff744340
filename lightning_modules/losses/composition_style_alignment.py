"""Composition term: z_dance must predict the music's style feature (the "style regressor").

In the regressor step the regressor learns to map z_dance (from the dance and from the music,
detached) to the frozen extractor's style feature; in the generator step the same mean squared error
flows back into both encoders, so dance codes carry the music's style. Ablating it tests the
paper's claim that style consistency depends on this regressor.
"""

import torch
import torch.nn.functional as F

from lightning_modules.losses.base import LossTerm, register


@register
class StyleAlignment(LossTerm):
    name = "style_alignment"
    model = "composition"
    steps = ("generator", "regressor")
    needs = ("dance_reg",)

    def compute(self, step, out, nets) -> torch.Tensor:
        reg, style = nets["dance_reg"], out["style"]
        return F.mse_loss(reg(out["dance_z"]), style) + F.mse_loss(reg(out["music_z"]), style)
