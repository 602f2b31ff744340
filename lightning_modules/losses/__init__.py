"""Pluggable loss terms: every module in this package registers its terms on import."""

import importlib
import pkgutil

from lightning_modules.losses.base import (
    STEPS,
    LossTerm,
    build_terms,
    combine_pair,
    known_terms,
    needed_networks,
    register,
    weighted_sum,
)

for _info in pkgutil.iter_modules(__path__):
    if _info.name != "base":
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["STEPS", "LossTerm", "build_terms", "combine_pair", "known_terms", "needed_networks", "register",
           "weighted_sum"]
