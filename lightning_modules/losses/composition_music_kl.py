"""Composition term: KL divergence of the music path's posteriors from N(0, I).

z_dance from the music (music-to-dance encoder) and the movement codes decoded from it. The
original release computed and logged these but left them out of the optimised loss, so the term is
off in the `paper` preset; switched on, it asks the music encoder's posterior itself to match the
prior, one more ablation axis. Reduced as `kl_reduction` says.
"""

from lightning_modules.losses.base import register
from lightning_modules.losses.composition_kl import CompositionKL, path_reads


@register
class CompositionMusicKL(CompositionKL):
    name = "music_kl"
    path = "music"
    reads = path_reads(path)
