"""Composition term: the music's z_dance matched in distribution to the real dances' (MMD; not the paper's).

On the built-in data the music path learns to put its z_dance near the middle of the real dances'
(each dimension spread about 0.7x as far, docs/training.md section 3e): what the music does not tell
(which of a style's figures comes next) is averaged out, and the movement codes decoded from such
z_dance make dances that move at half the speed of those from a real dance's z_dance. The
adversarial dance-code term is meant to prevent it but learns slowly. This term is the maximum mean
discrepancy between the batch's music z_dance and its real dances' z_dance (detached, so only the
music path moves), with inverse multiquadric kernels k(a, b) = c / (c + |a - b|^2) at several scales
c, each a multiple of the real codes' mean squared distance (so it needs no tuning to the code
width). Unbiased estimate: the diagonals of the same-set kernel matrices are left out.

Matched alone, the two distributions may agree while a style's music lands on another style's
dances. So each code is joined by the frozen extractor's style feature of its music (the same for
the music's and the real dance's code of one sequence), scaled so that its spread is
`composition.code_mmd_style_spread` times the codes' (the default, 0, matches the codes alone): two
sequences of different styles are then far apart and barely count, and the term matches the codes
style by style. Off in `paper`.
"""

import torch

from lightning_modules.losses.base import LossTerm, register

SCALES = (0.1, 0.3, 1.0, 3.0)  # kernel scales, in units of the real codes' mean squared distance


def squared_distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(N, M) squared Euclidean distances, written out (cdist's gradient is undefined at zero distance)."""
    d = (x * x).sum(1, keepdim=True) + (y * y).sum(1).unsqueeze(0) - 2.0 * x @ y.T
    return d.clamp(min=0.0)


def off_diagonal_mean(d: torch.Tensor) -> torch.Tensor:
    """The mean of a square (N, N) same-set matrix without its diagonal (N >= 2)."""
    n = d.shape[0]
    return (d.sum() - d.diagonal().sum()) / (n * (n - 1))


def mean_squared_distance(x: torch.Tensor) -> torch.Tensor:
    """The mean squared distance between two different rows of x (N >= 2), detached, at least 1e-8."""
    return off_diagonal_mean(squared_distances(x, x)).detach().clamp(min=1e-8)


def mmd(x: torch.Tensor, y: torch.Tensor, scales=SCALES) -> torch.Tensor:
    """Unbiased squared MMD between samples x (N, D) and y (M, D), N, M >= 2, IMQ kernels."""
    dxx, dyy, dxy = squared_distances(x, x), squared_distances(y, y), squared_distances(x, y)
    ref = off_diagonal_mean(dyy).detach().clamp(min=1e-8)
    total = x.new_zeros(())
    for s in scales:
        c = s * ref
        within = off_diagonal_mean(c / (c + dxx)) + off_diagonal_mean(c / (c + dyy))
        total = total + within - 2.0 * (c / (c + dxy)).mean()
    return total


@register
class DanceCodeMMD(LossTerm):
    name = "dance_code_mmd"
    model = "composition"
    steps = ("generator",)
    music_code, real_code = "music_z", "dance_z"  # the codes matched: one per sequence here
    reads = (real_code, music_code, "style")  # the forward-pass outputs `compute` reads

    def compute(self, step, out, nets) -> torch.Tensor:
        real, music = out[self.real_code].detach(), out[self.music_code]
        spread = float(self.option("code_mmd_style_spread", 0.0))
        if spread > 0:  # the style feature, scaled to `spread` times the real codes' mean squared distance
            style = out["style"].detach()
            # a sequence's style for each of its rows (codes per unit are sample-major, L rows a sequence)
            style = style.repeat_interleave(music.shape[0] // style.shape[0], dim=0)
            style = style * (spread * mean_squared_distance(real) / mean_squared_distance(style)).sqrt()
            real, music = torch.cat([real, style], dim=1), torch.cat([music, style], dim=1)
        return mmd(music, real)
