"""Plain networks (no Lightning): every size from config, parameter names as in the original release."""

from lightning_modules.networks.decomposition import (
    InitialPoseDecoder,
    InitialPoseEncoder,
    MovementEncoder,
    PoseDecoder,
    build_decomposition_networks,
)
from lightning_modules.networks.layers import GRU, MLP, activation, expand_initial_state, head
from lightning_modules.networks.style_extractor import StyleExtractor

__all__ = [
    "GRU",
    "MLP",
    "InitialPoseDecoder",
    "InitialPoseEncoder",
    "MovementEncoder",
    "PoseDecoder",
    "StyleExtractor",
    "activation",
    "build_decomposition_networks",
    "expand_initial_state",
    "head",
]
