"""The composition GAN's networks: movement codes become a dance code, and music becomes one too.

Layouts and parameter names follow the original release's `Stage2.ckpt` (DESIGN.md section 9), so
its state dicts load key for key; every width comes from `CompositionConfig`. Movement codes travel
as a mean and a log-variance per unit; a sequence of L units is "sample-major": the L units of one
sample are consecutive rows of an (N * L, M) tensor, as the movement encoder produces them when it
reads the units of a batch flattened in that order.

- `DanceEncoder` (`dance_enc`): the L movement codes -> mean and log-variance of z_dance.
- `DanceDecoder` (`dance_dec`): z_dance -> the L movement codes (mean and log-variance).
- `MusicDanceEncoder` (`audstyle_enc`): style feature + noise -> mean and log-variance of z_dance.
- `CodeDiscriminator` (`danceAud_dis` on the L movement codes, `zdance_dis` on z_dance): a code and
  the time-mean of the music features -> one real/fake logit.
- `StyleRegressor` (`dance_reg`): z_dance -> the music style feature.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

from lightning_modules.networks.layers import GRU, MLP, expand_initial_state, head

__all__ = [
    "CORE_NETWORKS",
    "OPTIONAL_NETWORKS",
    "CodeDiscriminator",
    "DanceDecoder",
    "DanceEncoder",
    "MusicDanceEncoder",
    "StyleRegressor",
    "build_composition_networks",
    "flatten_codes",
    "join_codes",
]

CORE_NETWORKS = ("dance_enc", "dance_dec", "audstyle_enc")  # always built: generation needs them
OPTIONAL_NETWORKS = ("danceAud_dis", "zdance_dis", "dance_reg")  # built only when a loss term needs one


def join_codes(mean: torch.Tensor, logvar: torch.Tensor, units: int) -> torch.Tensor:
    """Sample-major codes (N * units, M) twice -> (N, units, 2M), each unit's mean then log-variance."""
    codes = torch.cat([mean, logvar], dim=-1)
    return codes.reshape(-1, units, codes.shape[-1])


def flatten_codes(mean: torch.Tensor, logvar: torch.Tensor, units: int) -> torch.Tensor:
    """(N, units * 2M): the discriminator's input, unit by unit (mean, then log-variance, per unit)."""
    codes = join_codes(mean, logvar, units)
    return codes.reshape(codes.shape[0], -1)


class DanceEncoder(nn.Module):
    """A sequence of movement codes (N, L, 2M) to the mean and log-variance of z_dance.

    A GRU from a learned initial state reads the units in order; its last output summarises the dance.
    """

    def __init__(self, movement_dim: int = 512, hidden: int = 1024, dance_dim: int = 512):
        super().__init__()
        self.init_h = nn.Parameter(torch.zeros(1, 1, hidden))
        self.recurrent = GRU(2 * movement_dim, hidden)
        self.mean = head(hidden, dance_dim)
        self.std = head(hidden, dance_dim)  # named `std` in the original; it yields the log-variance

    def forward(self, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, _ = self.recurrent(codes, expand_initial_state(self.init_h, codes.shape[0]))
        last = out[:, -1]
        return self.mean(last), self.std(last)


class DanceDecoder(nn.Module):
    """z_dance (N, D) to L movement codes: mean and log-variance, each (N * L, M), sample-major.

    `z2init` gives the GRU's initial state; the GRU reads z_dance at every step (projected once with
    `fast_recurrence`); `movement_g` (Linear, LayerNorm, ReLU) and two heads give each unit's code.
    """

    def __init__(self, dance_dim: int = 512, hidden: int = 1024, movement_dim: int = 512,
                 fast_recurrence: bool = True):
        super().__init__()
        self.fast_recurrence = fast_recurrence
        self.z2init = head(dance_dim, hidden)
        self.recurrent = GRU(dance_dim, hidden)
        self.movement_g = MLP([hidden, hidden], act="relu", plain_last=False)
        self.mean = head(hidden, movement_dim)
        self.std = head(hidden, movement_dim)

    def forward(self, z_dance: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        h0 = self.z2init(z_dance).unsqueeze(0)
        out = self.recurrent.forward_constant(z_dance, h0, length, fast=self.fast_recurrence)
        h = self.movement_g(out.reshape(-1, out.shape[-1]))  # (N * L, H): sample-major rows
        return self.mean(h), self.std(h)


class MusicDanceEncoder(nn.Module):
    """Style feature (N, S) and Gaussian noise (N, noise_dim) to the mean and log-variance of z_dance.

    The noise is what lets one piece of music lead to many dances; it is drawn here unless given.
    """

    def __init__(self, style_dim: int = 30, noise_dim: int = 30, hidden: Sequence[int] = (64, 128),
                 dance_dim: int = 512):
        super().__init__()
        self.noise_dim = noise_dim
        self.enc = MLP([style_dim + noise_dim, *hidden], act="leaky_relu", plain_last=False)
        self.mean = head(hidden[-1], dance_dim)
        self.std = head(hidden[-1], dance_dim)

    def forward(self, style: torch.Tensor, noise: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if noise is None:
            noise = _randn_like_rows(style, self.noise_dim, generator)
        h = self.enc(torch.cat([style, noise], dim=1))
        return self.mean(h), self.std(h)


def _randn_like_rows(ref: torch.Tensor, dim: int, generator: torch.Generator | None) -> torch.Tensor:
    """Noise drawn on the generator's device (CPU generators stay reproducible on GPU), then moved."""
    if generator is None:
        return torch.randn(ref.shape[0], dim, device=ref.device, dtype=ref.dtype)
    return torch.randn(ref.shape[0], dim, generator=generator, device=generator.device).to(ref)


class CodeDiscriminator(nn.Module):
    """A code (N, code_dim) and the music's time-mean features (N, F) to one real/fake logit (N, 1).

    `movementd` and `audd` embed the two parts; `jointd` reads them joined, code part first.
    """

    def __init__(self, code_dim: int, audio_dim: int = 28, hidden: Sequence[int] = (1024, 512, 256, 30),
                 audio_hidden: int = 30):
        super().__init__()
        self.movementd = MLP([code_dim, *hidden], act="leaky_relu", plain_last=True)
        self.audd = MLP([audio_dim, audio_hidden, audio_hidden], act="leaky_relu", plain_last=False)
        self.jointd = head(hidden[-1] + audio_hidden, 1)

    def forward(self, code: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        return self.jointd(torch.cat([self.movementd(code), self.audd(audio)], dim=1))


class StyleRegressor(nn.Module):
    """z_dance (N, D) to a prediction of the music's style feature (N, S)."""

    def __init__(self, dance_dim: int = 512, hidden: Sequence[int] = (512, 256, 128), style_dim: int = 30):
        super().__init__()
        self.main = MLP([dance_dim, *hidden, style_dim], act="leaky_relu", plain_last=True)

    def forward(self, z_dance: torch.Tensor) -> torch.Tensor:
        return self.main(z_dance)


def build_composition_networks(cfg, movement_dim: int, style_dim: int, feature_dim: int, units: int,
                               optional: Iterable[str] = OPTIONAL_NETWORKS) -> nn.ModuleDict:
    """The composition networks under the original checkpoint's names, sized by a `CompositionConfig`.

    The three core networks are always built; of `OPTIONAL_NETWORKS` only those named in `optional`
    (the networks the enabled loss terms need), so an ablated model holds no unused parameter.
    `units` (L) sizes the movement discriminator, which reads all L codes at once.
    """
    optional = set(optional)
    unknown = optional - set(OPTIONAL_NETWORKS)
    if unknown:
        raise KeyError(f"unknown composition networks {sorted(unknown)}; "
                       f"optional: {', '.join(OPTIONAL_NETWORKS)}")
    fast = bool(getattr(cfg, "fast_recurrence", True))
    nets: dict[str, nn.Module] = {
        "dance_enc": DanceEncoder(movement_dim, cfg.hidden, cfg.dance_dim),
        "dance_dec": DanceDecoder(cfg.dance_dim, cfg.hidden, movement_dim, fast_recurrence=fast),
        "audstyle_enc": MusicDanceEncoder(style_dim, cfg.noise_dim, list(cfg.music_hidden), cfg.dance_dim),
    }
    if "danceAud_dis" in optional:
        nets["danceAud_dis"] = CodeDiscriminator(units * 2 * movement_dim, feature_dim, list(cfg.disc_hidden),
                                                 cfg.audio_disc_hidden)
    if "zdance_dis" in optional:
        nets["zdance_dis"] = CodeDiscriminator(2 * cfg.dance_dim, feature_dim, list(cfg.disc_hidden),
                                               cfg.audio_disc_hidden)
    if "dance_reg" in optional:
        nets["dance_reg"] = StyleRegressor(cfg.dance_dim, list(cfg.regressor_hidden), style_dim)
    return nn.ModuleDict(nets)
