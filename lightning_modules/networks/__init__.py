"""Plain modules (no Lightning): the networks, every size from config and parameter names as in the
original release, and the two models composed of them (`DecompositionVAE`, `CompositionGAN`)."""

from lightning_modules.networks.composition_gan import CompositionGAN
from lightning_modules.networks.decomposition import (
    InitialPoseDecoder,
    InitialPoseEncoder,
    MovementEncoder,
    PoseDecoder,
    build_decomposition_networks,
)
from lightning_modules.networks.decomposition_vae import DecompositionVAE
from lightning_modules.networks.layers import GRU, MLP, activation, expand_initial_state, head
from lightning_modules.networks.style_extractor import StyleExtractor

__all__ = [
    "GRU",
    "MLP",
    "CompositionGAN",
    "DecompositionVAE",
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
