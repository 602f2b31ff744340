"""The 14-joint 2D skeleton every part of d2m-lab shares, and pose normalisation.

The joint order is OpenPose COCO-18 without eyes and ears, so that keypoints from OpenPose (and the
original release's units) map onto it by indexing alone. Coordinates are image pixels, x right and
y down. A flat pose is 28 numbers (x0, y0, x1, y1, ...), the layout the networks read.
"""

from __future__ import annotations

from typing import Any

import numpy as np

JOINT_NAMES: tuple[str, ...] = (
    "nose",
    "neck",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
)
NUM_JOINTS = len(JOINT_NAMES)
POSE_DIM = 2 * NUM_JOINTS  # 28
JOINT_INDEX: dict[str, int] = {name: i for i, name in enumerate(JOINT_NAMES)}

# (parent, child): a tree rooted at the neck, as OpenPose draws COCO limbs. The synthetic dancer is
# built by forward kinematics along these bones, so their lengths are what stays constant.
BONES: tuple[tuple[int, int], ...] = (
    (1, 0),  # neck - nose
    (1, 2),  # neck - right shoulder
    (2, 3),
    (3, 4),
    (1, 5),  # neck - left shoulder
    (5, 6),
    (6, 7),
    (1, 8),  # neck - right hip
    (8, 9),
    (9, 10),
    (1, 11),  # neck - left hip
    (11, 12),
    (12, 13),
)

# Segments to draw, back to front: legs and hips first, then torso and arms, the head last, so that
# arms in front of the body stay visible. The hip line is drawn although it is not a tree bone.
DRAW_ORDER: tuple[tuple[int, int], ...] = (
    (11, 12), (12, 13), (8, 9), (9, 10), (8, 11),
    (1, 11), (1, 8), (1, 5), (1, 2),
    (5, 6), (6, 7), (2, 3), (3, 4),
    (1, 0),
)

# Mirror map (right <-> left), for augmentation and for checking left/right conventions.
MIRROR: tuple[int, ...] = (0, 1, 5, 6, 7, 2, 3, 4, 11, 12, 13, 8, 9, 10)


def flatten(poses: np.ndarray) -> np.ndarray:
    """(..., 14, 2) -> (..., 28) in the x0, y0, x1, y1 order."""
    poses = np.asarray(poses)
    if poses.shape[-2:] != (NUM_JOINTS, 2):
        raise ValueError(f"expected (..., {NUM_JOINTS}, 2) poses, got {poses.shape}")
    return poses.reshape(*poses.shape[:-2], POSE_DIM)


def unflatten(flat: np.ndarray) -> np.ndarray:
    """(..., 28) -> (..., 14, 2)."""
    flat = np.asarray(flat)
    if flat.shape[-1] != POSE_DIM:
        raise ValueError(f"expected (..., {POSE_DIM}) poses, got {flat.shape}")
    return flat.reshape(*flat.shape[:-1], NUM_JOINTS, 2)


def normalise(poses: Any, mean: Any, std: Any) -> Any:
    """(pose - mean) / std per coordinate; works on flat (..., 28) numpy arrays or torch tensors."""
    return (poses - mean) / std


def unnormalise(poses: Any, mean: Any, std: Any) -> Any:
    """Inverse of `normalise`: back to pixels, flat (..., 28)."""
    return poses * std + mean


def bone_lengths(poses: np.ndarray) -> np.ndarray:
    """(T, 14, 2) or (T, 28) -> (T, len(BONES)) segment lengths in pixels."""
    p = np.asarray(poses, dtype=np.float64)
    if p.shape[-1] == POSE_DIM:
        p = unflatten(p)
    parents = [b[0] for b in BONES]
    children = [b[1] for b in BONES]
    return np.linalg.norm(p[..., children, :] - p[..., parents, :], axis=-1)
