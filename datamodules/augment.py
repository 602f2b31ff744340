"""Training-time changes of dance units that keep them plausible dances of other dancers.

The built-in data has a few dozen dancers, each of one size and one set of proportions, dancing
their own sequences of moves; a VAE trained on them learns those dancers and sequences, and rebuilds
an unseen dancer's units worse than its own (docs/training.md, sections 3e and 3h). Each function
takes a batch of units as pixels, (N, T, 28), and returns a new tensor; all of them keep the centre
of each unit's first pose where it was, so the spread of positions the normalisation was fitted on
stays. They work on whole batches because the data loader fetches a batch at once
(`torch_data.UnitPairDataset.__getitems__`): one matrix product for 64 units, not 64.
"""

from __future__ import annotations

import torch

from datamodules.skeleton import BONES, MIRROR, NUM_JOINTS

# PATHS[j, b] = 1 where bone b lies on the path from the neck (the root of BONES) down to joint j
PATHS = torch.zeros(NUM_JOINTS, len(BONES))
for _b, (_parent, _child) in enumerate(BONES):
    PATHS[_child] = PATHS[_parent]
    PATHS[_child, _b] = 1.0
ROOT = 1  # the neck
_PARENTS = torch.tensor([p for p, _ in BONES])
_CHILDREN = torch.tensor([c for _, c in BONES])
_MIRROR = torch.tensor(MIRROR)
_FLIP = torch.tensor([-1.0, 1.0])  # x reflected, y kept


def _joints(units: torch.Tensor) -> torch.Tensor:
    return units.reshape(*units.shape[:-1], NUM_JOINTS, 2)


def _first_centre(joints: torch.Tensor) -> torch.Tensor:
    """(N, T, 14, 2) -> (N, 1, 1, 2): the centre of each unit's first pose."""
    return joints[:, :1].mean(dim=2, keepdim=True)


def scale_about_first_pose(units: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Unit n scaled by `factors[n]` about the centre of its first pose: a larger or smaller dancer."""
    joints = _joints(units)
    centre = _first_centre(joints)
    return (centre + (joints - centre) * factors[:, None, None, None]).reshape(units.shape)


def mirror(units: torch.Tensor) -> torch.Tensor:
    """The units' mirror images: left and right joints swapped and x reflected about the first
    pose's centre, so a move danced to the left becomes the same move danced to the right."""
    joints = _joints(units)[:, :, _MIRROR]
    centre = _first_centre(joints)
    return ((joints - centre) * _FLIP + centre).reshape(units.shape)


def rescale_bones(units: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Unit n with bone b of `skeleton.BONES` `factors[n, b]` times as long in every frame: a dancer
    of other proportions doing the same moves (every bone keeps its direction)."""
    joints = _joints(units)
    bones = joints[:, :, _CHILDREN] - joints[:, :, _PARENTS]  # (N, T, B, 2)
    # one matrix product over every unit, frame and coordinate: (14, B) @ (B, N * T * 2)
    scaled = (bones * factors[:, None, :, None]).permute(2, 0, 1, 3).reshape(len(BONES), -1)
    offsets = (PATHS @ scaled).reshape(NUM_JOINTS, *bones.shape[:2], 2).permute(1, 2, 0, 3)
    rebuilt = joints[:, :, ROOT : ROOT + 1] + offsets
    rebuilt = rebuilt + _first_centre(joints) - _first_centre(rebuilt)
    return rebuilt.reshape(units.shape)
