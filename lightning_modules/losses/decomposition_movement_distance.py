"""Decomposition term: the two copies' movement codes should be the same (L1).

It states directly what cross reconstruction asks for indirectly: a shifted copy moves the same way.
The original compares the two copies' sampled codes (`movement_distance_codes=sampled`), so the
term also pulls the posteriors' spread down; `mean` compares the posterior means only.
"""

import torch

from common.errors import D2MError
from lightning_modules.losses.base import LossTerm, register

_CODES = {"sampled": "z_movement", "mean": "movement_mean"}


@register
class MovementDistance(LossTerm):
    name = "movement_distance"
    model = "decomposition"
    trains = ("movement_enc",)  # the networks its gradient reaches

    def __init__(self, cfg, model_cfg=None):
        super().__init__(cfg, model_cfg)
        codes = str(self.option("movement_distance_codes", "sampled"))
        if codes not in _CODES:
            raise D2MError(f"decomposition.movement_distance_codes: unknown value '{codes}'; "
                           f"choices: {', '.join(_CODES)}")
        self.key = _CODES[codes]
        self.reads = (f"{self.key}_a", f"{self.key}_b")  # the forward-pass outputs `compute` reads

    def compute(self, step, out, nets) -> torch.Tensor:
        return (out[f"{self.key}_a"] - out[f"{self.key}_b"]).abs().mean()
