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


def mean_squared_distance(x: torch.Tensor) -> torch.Tensor:
    """The mean squared distance between two different rows of x (N >= 2), detached, at least 1e-8."""
    n = x.shape[0]
    return (squared_distances(x, x).sum() / (n * (n - 1))).detach().clamp(min=1e-8)


def with_style(codes: torch.Tensor, style: torch.Tensor, reference: torch.Tensor, spread: float) -> torch.Tensor:
    """codes (N, D) joined by style (N, S), scaled to `spread` times the mean squared distance of `reference`."""
    scale = (spread * mean_squared_distance(reference) / mean_squared_distance(style)).sqrt()
    return torch.cat([codes, style.detach() * scale], dim=1)


def mmd(x: torch.Tensor, y: torch.Tensor, scales=SCALES) -> torch.Tensor:
    """Unbiased squared MMD between samples x (N, D) and y (M, D), N, M >= 2, IMQ kernels."""
    n, m = x.shape[0], y.shape[0]
    dxx, dyy, dxy = squared_distances(x, x), squared_distances(y, y), squared_distances(x, y)
    ref = mean_squared_distance(y)
    total = x.new_zeros(())
    for s in scales:
        c = s * ref
        kxx, kyy, kxy = c / (c + dxx), c / (c + dyy), c / (c + dxy)
        total = total + ((kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
                         + (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1)) - 2.0 * kxy.mean())
    return total


@register
class DanceCodeMMD(LossTerm):
    name = "dance_code_mmd"
    model = "composition"
    steps = ("generator",)
    reads = ("dance_z", "music_z", "style")  # the forward-pass outputs `compute` reads

    def compute(self, step, out, nets) -> torch.Tensor:
        real, music = out["dance_z"].detach(), out["music_z"]
        spread = float(self.option("code_mmd_style_spread", 0.0))
        if spread > 0:
            real, music = with_style(real, out["style"], real, spread), with_style(music, out["style"], real, spread)
        return mmd(music, real)
