"""Composition term: z_dance must predict the music's style feature (the "style regressor").

MSE(regressor(real z_dance), style) + MSE(regressor(music z_dance), style), where style is the
frozen extractor's feature. With `style_step=separate` (the original) the term is the whole style
("info") step: its own optimiser moves the regressor and both encoders on it, after the generator
step. With `style_step=joint` the encoders learn it inside the generator step and the regressor in
a step of its own on detached codes. Ablating it tests the paper's claim that style consistency
depends on this regressor.
"""

import torch
import torch.nn.functional as F

from common.errors import D2MError
from lightning_modules.losses.base import LossTerm, register

_STEPS = {"separate": ("regressor",), "joint": ("generator", "regressor")}


@register
class StyleAlignment(LossTerm):
    name = "style_alignment"
    model = "composition"
    steps = ("generator", "regressor")
    needs = ("dance_reg",)
    reads = ("style", "dance_z", "music_z")  # the forward-pass outputs `compute` reads

    def __init__(self, cfg, model_cfg=None):
        super().__init__(cfg, model_cfg)
        mode = str(self.option("style_step", "separate"))
        if mode not in _STEPS:
            raise D2MError(f"composition.style_step: unknown value '{mode}'; choices: {', '.join(_STEPS)}")
        self.steps = _STEPS[mode]

    def compute(self, step, out, nets) -> torch.Tensor:
        reg, style = nets["dance_reg"], out["style"]
        return F.mse_loss(reg(out["dance_z"]), style) + F.mse_loss(reg(out["music_z"]), style)
