"""The loss-term protocol and registry that make every loss an ablation switch.

A term declares its name, the model it belongs to, the networks it needs built and the optimisation
steps it contributes to. A LightningModule builds only the networks that its enabled terms need, runs
one shared forward pass per step into a dict of named tensors, and sums the weighted terms of each
step; it never names a term. Adding a term is one new file in this package plus one config entry.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import nn

from common.errors import D2MError
from lightning_modules.config import LossTermConfig

STEPS = ("generator", "discriminator", "regressor")

_REGISTRY: dict[tuple[str, str], type[LossTerm]] = {}


class LossTerm:
    """One weighted, switchable loss term.

    Subclasses set the class attributes and implement `compute`, which returns the unweighted loss
    of this term for `step` from the shared forward pass `out`, using the built networks `nets`.
    `model_cfg` is the whole model block (a `DecompositionConfig` or `CompositionConfig`): a term
    reads the objective's switches (reductions, formulations) there; None takes the schema defaults.
    """

    name: ClassVar[str]
    model: ClassVar[str]  # "decomposition" | "composition"
    steps: tuple[str, ...] = ("generator",)  # a term may narrow it per instance from `model_cfg`
    needs: ClassVar[tuple[str, ...]] = ()  # names of optional networks the term needs

    def __init__(self, cfg: LossTermConfig, model_cfg=None):
        self.cfg = cfg
        self.model_cfg = model_cfg

    def option(self, key: str, default):
        """A switch of the model block (e.g. `kl_reduction`), or its default without a model block."""
        return getattr(self.model_cfg, key, default) if self.model_cfg is not None else default

    def weight_at(self, iteration: int) -> float:
        """The term's weight at a training iteration, with the optional sigmoid warm-up."""
        w = float(self.cfg.weight)
        if self.cfg.warmup_slope > 0:
            w /= 1.0 + math.exp(-self.cfg.warmup_slope * (iteration - self.cfg.warmup_center))
        return w

    def compute(self, step: str, out: dict[str, torch.Tensor], nets: nn.ModuleDict) -> torch.Tensor:
        raise NotImplementedError


def register(cls: type[LossTerm]) -> type[LossTerm]:
    """Class decorator: make a term available to its model under its name."""
    key = (cls.model, cls.name)
    if key in _REGISTRY and _REGISTRY[key] is not cls:
        raise RuntimeError(f"loss term {key} registered twice")
    _REGISTRY[key] = cls
    return cls


def known_terms(model: str) -> list[str]:
    return sorted(name for (m, name) in _REGISTRY if m == model)


def combine_pair(a: torch.Tensor, b: torch.Tensor, reduction: str) -> torch.Tensor:
    """The two jittered copies' values of one term: summed (the original) or averaged."""
    if reduction == "sum":
        return a + b
    if reduction == "mean":
        return 0.5 * (a + b)
    raise D2MError(f"pair_reduction: unknown value '{reduction}'; choices: sum, mean")


def build_terms(model: str, configs: dict[str, LossTermConfig], model_cfg=None) -> dict[str, LossTerm]:
    """Instantiate the enabled terms of `model`; an unknown name is an error listing the known ones."""
    terms = {}
    for name, cfg in configs.items():
        cls = _REGISTRY.get((model, name))
        if cls is None:
            raise D2MError(
                f"unknown {model} loss term '{name}'; known terms: {', '.join(known_terms(model))}"
            )
        if cfg.enabled:
            terms[name] = cls(cfg, model_cfg)
    return terms


def needed_networks(terms: dict[str, LossTerm]) -> set[str]:
    return {net for t in terms.values() for net in t.needs}


def weighted_sum(
    terms: dict[str, LossTerm], step: str, out: dict[str, torch.Tensor], nets: nn.ModuleDict, iteration: int
) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
    """Sum the weighted terms that contribute to `step`; also return each term's unweighted value."""
    total = None
    parts: dict[str, torch.Tensor] = {}
    for name, t in terms.items():
        if step not in t.steps:
            continue
        value = t.compute(step, out, nets)
        key = name if len(t.steps) == 1 else f"{name}_{step}"
        parts[key] = value.detach()
        contrib = t.weight_at(iteration) * value
        total = contrib if total is None else total + contrib
    return total, parts
