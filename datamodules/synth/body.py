"""Forward kinematics of the synthetic dancer: joint angles in, 14 joints in pixels out.

Driving the body by angles keeps every bone of `skeleton.BONES` at a constant length, so generated
dances stay plausible bodies however the movements are mixed. The torso is one rigid piece (neck,
shoulders and hips), limbs hang from it, and the lower ankle is put on the floor (minus a lift for
releves and jumps), so bending the knees lowers the body as in a real plie.

Angles are radians from straight down in the image plane; positive turns towards image right. Limb
angles are given per side as "away from the body" (abduction) so a movement and its mirror image
use the same numbers; knees and elbows bend relative to their upper segment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datamodules.skeleton import NUM_JOINTS

PARAMS = ("torso", "head", "r_sh", "r_el", "l_sh", "l_el", "r_hip", "r_knee", "l_hip", "l_knee", "dx", "lift")
P = {name: i for i, name in enumerate(PARAMS)}
FRAME_SIZE = (640, 480)  # width, height of the virtual camera image, pixels


@dataclass
class Body:
    """Segment lengths (pixels) and placement of one dancer."""

    head: float = 34.0
    shoulder: float = 36.0  # half the shoulder width
    torso: float = 105.0  # neck to mid-hip
    hip: float = 20.0  # half the hip width
    upper_arm: float = 52.0
    forearm: float = 48.0
    thigh: float = 78.0
    shank: float = 74.0
    home_x: float = 320.0  # where the mid-hip stands when dx = 0
    floor_y: float = 430.0

    @classmethod
    def random(cls, rng: np.random.Generator) -> Body:
        """A dancer of random size (0.8 to 1.15 of the base), proportions (+-6 %) and place."""
        scale = rng.uniform(0.8, 1.15)
        base = cls()
        sizes = {
            name: getattr(base, name) * scale * rng.uniform(0.94, 1.06)
            for name in ("head", "shoulder", "torso", "hip", "upper_arm", "forearm", "thigh", "shank")
        }
        return cls(**sizes, home_x=rng.uniform(230, 410), floor_y=rng.uniform(400, 455))


def _dir(angle: np.ndarray) -> np.ndarray:
    """Unit vectors for angles from straight down: (sin a, cos a), y pointing down."""
    return np.stack([np.sin(angle), np.cos(angle)], axis=-1)


def forward_kinematics(params: np.ndarray, body: Body) -> np.ndarray:
    """(T, len(PARAMS)) angles and offsets -> (T, 14, 2) joint positions in pixels."""
    q = np.asarray(params, dtype=np.float64)
    phi = q[:, P["torso"]]
    down = _dir(phi)
    across = np.stack([np.cos(phi), -np.sin(phi)], axis=-1)  # towards the dancer's left (image right)
    joints = np.zeros((q.shape[0], NUM_JOINTS, 2))
    neck = np.zeros((q.shape[0], 2))
    mid_hip = neck + body.torso * down
    joints[:, 1] = neck
    joints[:, 0] = neck - body.head * _dir(phi + q[:, P["head"]])
    joints[:, 2] = neck - body.shoulder * across
    joints[:, 5] = neck + body.shoulder * across
    joints[:, 8] = mid_hip - body.hip * across
    joints[:, 11] = mid_hip + body.hip * across
    for side, sign, (sh, el, wr), (hp, kn, an) in (
        ("r", -1.0, (2, 3, 4), (8, 9, 10)),
        ("l", 1.0, (5, 6, 7), (11, 12, 13)),
    ):
        upper = phi + sign * q[:, P[f"{side}_sh"]]
        fore = upper + sign * q[:, P[f"{side}_el"]]
        joints[:, el] = joints[:, sh] + body.upper_arm * _dir(upper)
        joints[:, wr] = joints[:, el] + body.forearm * _dir(fore)
        thigh = phi + sign * q[:, P[f"{side}_hip"]]
        shank = thigh - sign * q[:, P[f"{side}_knee"]]
        joints[:, kn] = joints[:, hp] + body.thigh * _dir(thigh)
        joints[:, an] = joints[:, kn] + body.shank * _dir(shank)
    # place the body: mid-hip over home_x + dx, the lower ankle on the floor minus the lift
    mid_x = (joints[:, 8, 0] + joints[:, 11, 0]) / 2.0
    lowest = np.maximum(joints[:, 10, 1], joints[:, 13, 1])
    shift_x = body.home_x + q[:, P["dx"]] - mid_x
    shift_y = body.floor_y - q[:, P["lift"]] - lowest
    joints[..., 0] += shift_x[:, None]
    joints[..., 1] += shift_y[:, None]
    return joints.astype(np.float32)
