"""Motion speed and kinematic beats of a dance (local minima of motion speed).

Beat-normalised units are cut at these beats, and the synthetic dances are checked against them.
The speed at frame t is the central difference (pose[t+1] - pose[t-1]) / 2, averaged over joints:
a stop reached at frame b then shows on frame b (a forward difference would put it on b - 1).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from datamodules.skeleton import NUM_JOINTS, POSE_DIM


def motion_speed(poses: np.ndarray) -> np.ndarray:
    """(T, 14, 2) or (T, 28) pixel poses -> (T,) mean joint speed in pixels per frame."""
    p = np.asarray(poses, dtype=np.float64)
    if p.shape[-1] == POSE_DIM:
        p = p.reshape(p.shape[0], NUM_JOINTS, 2)
    if p.shape[0] < 3:
        return np.zeros(p.shape[0])
    padded = np.concatenate([p[:1], p, p[-1:]], axis=0)
    velocity = (padded[2:] - padded[:-2]) / 2.0
    return np.linalg.norm(velocity, axis=-1).mean(axis=-1)


def kinematic_beats(poses: np.ndarray, smooth: float = 0.0, min_gap: int = 3) -> np.ndarray:
    """Frames where the motion speed has a local minimum, as int64 indices.

    `smooth` (frames) low-passes the speed first, for noisy keypoints from video. A minimum must be
    lower than the frames on each side (ties on a plateau count once, at its first frame) and at
    least `min_gap` frames after the previous one (the lower of two close minima wins).
    """
    speed = motion_speed(poses)
    if smooth > 0:
        speed = gaussian_filter1d(speed, smooth, mode="nearest")
    if speed.size < 3:
        return np.zeros(0, dtype=np.int64)
    left = speed[1:-1] < speed[:-2]
    right = speed[1:-1] <= speed[2:]
    candidates = np.nonzero(left & right)[0] + 1
    beats: list[int] = []
    for c in candidates:
        if beats and c - beats[-1] < min_gap:
            if speed[c] < speed[beats[-1]]:
                beats[-1] = int(c)
            continue
        beats.append(int(c))
    return np.asarray(beats, dtype=np.int64)
