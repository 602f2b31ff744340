"""The 14-joint skeleton: DESIGN.md's order, a bone tree, and normalisation that inverts."""

import numpy as np
import torch

from datamodules.skeleton import (
    BONES,
    DRAW_ORDER,
    JOINT_NAMES,
    MIRROR,
    NUM_JOINTS,
    POSE_DIM,
    bone_lengths,
    flatten,
    normalise,
    unflatten,
    unnormalise,
)


def test_joint_order_is_coco18_without_eyes_and_ears():
    assert NUM_JOINTS == 14 and POSE_DIM == 28
    assert JOINT_NAMES[:2] == ("nose", "neck")
    assert JOINT_NAMES[4] == "right_wrist" and JOINT_NAMES[7] == "left_wrist"
    assert JOINT_NAMES[10] == "right_ankle" and JOINT_NAMES[13] == "left_ankle"


def test_bones_form_a_tree_over_all_joints_and_drawing_covers_them():
    children = [c for _, c in BONES]
    assert len(BONES) == NUM_JOINTS - 1 and len(set(children)) == NUM_JOINTS - 1 and 1 not in children
    drawn = {j for seg in DRAW_ORDER for j in seg}
    assert drawn == set(range(NUM_JOINTS))
    assert all(MIRROR[MIRROR[j]] == j for j in range(NUM_JOINTS))


def test_flatten_and_normalise_round_trip():
    rng = np.random.default_rng(0)
    poses = rng.uniform(0, 500, (5, 14, 2)).astype(np.float32)
    flat = flatten(poses)
    assert flat.shape == (5, 28) and flat[0, 2] == poses[0, 1, 0] and flat[0, 3] == poses[0, 1, 1]
    assert np.array_equal(unflatten(flat), poses)
    mean, std = flat.mean(0), flat.std(0) + 1.0
    assert np.allclose(unnormalise(normalise(flat, mean, std), mean, std), flat, atol=1e-3)
    t = torch.from_numpy(flat)
    assert torch.allclose(normalise(t, torch.from_numpy(mean), torch.from_numpy(std)),
                          torch.from_numpy(normalise(flat, mean, std)))
    assert bone_lengths(poses).shape == (5, len(BONES))
