"""Composition term: the movement codes decoded from the music matched in distribution to the real units' (MMD).

Not the paper's (off in `paper`). The dance-code MMD matches z_dance, one code per sequence; what
the pose decoder turns into motion is the movement code of each unit, and on the built-in data the
music's decoded codes varied half as much as the frozen movement encoder's codes of real units
(docs/training.md, section 3e), so the dances they decode move at about half the real speed. This
term is the same MMD (IMQ kernels at scales of the real codes' spread, unbiased) between the
batch's L * B movement-code means decoded from the music's z_dance and the movement encoder's means
for the real units (detached: the encoder is the VAE's, frozen). `code_mmd_style_spread` > 0 joins
each unit's music style feature, as in `dance_code_mmd`, so the codes are matched style by style.
"""

from lightning_modules.losses.base import register
from lightning_modules.losses.composition_dance_code_mmd import DanceCodeMMD


@register
class MovementCodeMMD(DanceCodeMMD):
    name = "movement_code_mmd"
    music_code, real_code = "music_movement_mean", "movement_mean"  # L codes per sequence
    reads = (real_code, music_code, "style")
