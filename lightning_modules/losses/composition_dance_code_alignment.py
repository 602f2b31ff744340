"""Composition term: the music's z_dance must be indistinguishable from a real dance's (adversarial).

The dance-code discriminator sees z_dance (mean and log-variance) together with the music it goes
with; in the discriminator step it learns real (from the dance encoder) against fake (from the
music encoder), in the generator step the music encoder learns to pass as real. Without it the two
encoders meet only through the style regressor, and music-made codes drift off the dance manifold.
"""

import torch
import torch.nn.functional as F

from lightning_modules.losses.base import LossTerm, register


def adversarial(step: str, dis, real_code, fake_code, audio) -> torch.Tensor:
    """Binary cross-entropy with logits: real -> 1 and fake -> 0 for the critic, fake -> 1 for the generator.

    The module hands the discriminator step detached tensors, so only the critic learns there.
    """
    fake_logit = dis(fake_code, audio)
    if step == "generator":
        return F.binary_cross_entropy_with_logits(fake_logit, torch.ones_like(fake_logit))
    real_logit = dis(real_code, audio)
    return (F.binary_cross_entropy_with_logits(real_logit, torch.ones_like(real_logit))
            + F.binary_cross_entropy_with_logits(fake_logit, torch.zeros_like(fake_logit)))


@register
class DanceCodeAlignment(LossTerm):
    name = "dance_code_alignment"
    model = "composition"
    steps = ("discriminator", "generator")
    needs = ("zdance_dis",)
    # the forward-pass outputs `compute` reads
    reads = ("dance_mean", "dance_logvar", "music_mean", "music_logvar", "audio")

    def compute(self, step, out, nets) -> torch.Tensor:
        real = torch.cat([out["dance_mean"], out["dance_logvar"]], dim=1)
        fake = torch.cat([out["music_mean"], out["music_logvar"]], dim=1)
        return adversarial(step, nets["zdance_dis"], real, fake, out["audio"])
