"""Small building blocks shared by every network of the three models.

They exist so that parameter names come out exactly as in the original release's checkpoints
(DESIGN.md section 9): an `MLP` is an `nn.Sequential` whose indices count LayerNorm and activation
layers (`enc.0` Linear, `enc.1` LayerNorm, `enc.2` activation, `enc.3` Linear, ...), a `head` is a
one-layer Sequential (`mean.0`), and `GRU` is an `nn.GRU` (so its weights stay `weight_ih_l0`, ...)
that can also run a constant input cheaply. With these, loading an original checkpoint is a
key-for-key copy and no network needs a renaming table.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from common.errors import D2MError

__all__ = ["GRU", "MLP", "activation", "expand_initial_state", "head"]


def activation(name: str) -> nn.Module:
    """The activations the original uses: LeakyReLU(0.2) in encoders and critics, ReLU in decoder heads."""
    if name in ("leaky_relu", "lrelu"):
        return nn.LeakyReLU(0.2)
    if name == "relu":
        return nn.ReLU()
    if name == "tanh":
        return nn.Tanh()
    raise D2MError(f"unknown activation '{name}'; known: leaky_relu, relu, tanh")


class MLP(nn.Sequential):
    """Linear layers, each followed by an optional LayerNorm and an activation, in one Sequential.

    `sizes` lists the widths, input first: `MLP([28, 64, 64])` is Linear(28,64), LayerNorm, act,
    Linear(64,64), LayerNorm, act (indices 0..5). With `plain_last=True` the last Linear has no
    LayerNorm and no activation (unless `last_activation` is set, which adds a parameter-free layer
    and so does not change any parameter name). `dropout > 0` appends a Dropout to every hidden block;
    it shifts the indices, so layouts that must match the original checkpoints leave it at 0.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        act: str = "leaky_relu",
        norm: bool = True,
        plain_last: bool = True,
        last_activation: bool = False,
        dropout: float = 0.0,
    ):
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2:
            raise D2MError(f"an MLP needs at least an input and an output width, got {sizes}")
        layers: list[nn.Module] = []
        n = len(sizes) - 1
        for i in range(n):
            layers.append(nn.Linear(sizes[i], sizes[i + 1]))
            last = i == n - 1
            if last and plain_last:
                if last_activation:
                    layers.append(activation(act))
                break
            if norm:
                layers.append(nn.LayerNorm(sizes[i + 1]))
            layers.append(activation(act))
            if dropout > 0 and not last:
                layers.append(nn.Dropout(dropout))
        super().__init__(*layers)


def head(in_dim: int, out_dim: int) -> nn.Sequential:
    """A one-Linear Sequential: the original's `mean.0` / `std.0` projections to a latent code."""
    return nn.Sequential(nn.Linear(in_dim, out_dim))


def expand_initial_state(init_h: torch.Tensor, batch: int) -> torch.Tensor:
    """Repeat a learned initial state (layers*directions, 1, H) over the batch, as the original does."""
    return init_h.expand(-1, batch, -1).contiguous()


class GRU(nn.GRU):
    """`nn.GRU` (batch first) plus a fast path for a decoder that reads the same vector at every step.

    A decoder that feeds a constant code `x` at each of `length` steps makes `nn.GRU` compute the input
    projection `W_ih x + b_ih` `length` times; `forward_constant(fast=True)` computes it once and runs
    the recurrence by hand with the same parameters, so results and gradients equal the plain path to
    float tolerance. The fast path covers one-layer, one-direction GRUs (the decoders); others fall
    back to the plain path.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bidirectional: bool = False,
                 dropout: float = 0.0):
        super().__init__(input_size, hidden_size, num_layers=num_layers, batch_first=True,
                         bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0)

    def forward_constant(self, x: torch.Tensor, h0: torch.Tensor, length: int, fast: bool = True) -> torch.Tensor:
        """Outputs (N, length, H*directions) for input `x` (N, input_size) repeated `length` times.

        `h0` is (layers*directions, N, H), as for `nn.GRU`.
        """
        if not fast or self.num_layers != 1 or self.bidirectional:
            out, _ = self(x.unsqueeze(1).expand(-1, length, -1), h0)
            return out
        gi = F.linear(x, self.weight_ih_l0, self.bias_ih_l0)  # (N, 3H), computed once
        gi_r, gi_z, gi_n = gi.chunk(3, dim=1)
        h = h0[0]
        outs = []
        for _ in range(length):
            gh = F.linear(h, self.weight_hh_l0, self.bias_hh_l0)
            gh_r, gh_z, gh_n = gh.chunk(3, dim=1)
            r = torch.sigmoid(gi_r + gh_r)
            z = torch.sigmoid(gi_z + gh_z)
            n = torch.tanh(gi_n + r * gh_n)
            h = n + z * (h - n)  # (1 - z) * n + z * h
            outs.append(h)
        return torch.stack(outs, dim=1)
