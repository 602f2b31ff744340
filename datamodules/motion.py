"""The one kinematic-beat detector: motion speed and its deep local minima.

Unit cutting, beat warping and every beat metric read beats from here, so a dance's beats are the
same frames whoever asks. The speed at frame t is the central difference (pose[t+1] - pose[t-1]) / 2
averaged over joints, in pixels per frame: a stop reached at frame b shows on frame b (a forward
difference would put it on b - 1, a whole beat-align sigma away at 15 fps). The two end frames use
one-sided differences.

A kinematic beat is a local minimum of that speed whose depth (its prominence: how far the speed
must rise on both sides before it reaches a lower minimum) is at least `min_depth` pixels per frame.
Without a depth, keypoint noise makes a beat every other frame: a static pose with 0.5 px of jitter
would "dance" on more beats than a real dancer. The minima of a static pose with Gaussian jitter of
0.5 px (or uniform jitter under 1 px peak to peak) are under 0.6 px/frame deep, below the default
depth, while the stops of a dance drop from several pixels per frame to about 0 (on the built-in
data most stops are more than 1.5 px/frame deep).
No smoothing and no refinement: the beat is the raw frame where the motion is slowest.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import find_peaks

from datamodules.skeleton import NUM_JOINTS, POSE_DIM

MIN_DEPTH_PX = 0.9
"""Default minimum depth of a kinematic beat, pixels per frame of mean joint speed."""

MIN_GAP = 3
"""Default minimum distance between two kinematic beats, frames (the lower of two close minima wins)."""


def _joints(poses: np.ndarray) -> np.ndarray:
    p = np.asarray(poses, dtype=np.float64)
    if p.ndim == 2 and p.shape[-1] == POSE_DIM:
        p = p.reshape(p.shape[0], NUM_JOINTS, 2)
    elif p.ndim == 2 and p.shape[-1] % 2 == 0:
        p = p.reshape(p.shape[0], -1, 2)
    if p.ndim != 3 or p.shape[-1] != 2:
        from common.errors import D2MError

        raise D2MError(f"poses must be (T, J, 2) or (T, 2J), got shape {np.shape(poses)}")
    return p


def joint_velocity(poses: np.ndarray) -> np.ndarray:
    """(T, J, 2) or (T, 2J) pixel poses -> (T, J, 2) velocity in pixels per frame (central difference)."""
    p = _joints(poses)
    if p.shape[0] < 2:
        return np.zeros_like(p)
    return np.gradient(p, axis=0)


def motion_speed(poses: np.ndarray) -> np.ndarray:
    """(T, 14, 2) or (T, 28) pixel poses -> (T,) mean joint speed in pixels per frame."""
    return np.linalg.norm(joint_velocity(poses), axis=-1).mean(axis=-1)


def kinematic_beats(poses: np.ndarray, min_depth: float = MIN_DEPTH_PX, min_gap: int = MIN_GAP) -> np.ndarray:
    """Frames of the kinematic beats of pixel poses, as sorted int64 indices.

    A beat is a local minimum of `motion_speed` at least `min_depth` px/frame deep (prominence) and
    at least `min_gap` frames from the next deeper one; a held pose (a run of equal speeds) counts
    once, at the middle of the run. Minima on the first or last frame are not beats: the motion
    beyond them is unknown.
    """
    speed = motion_speed(poses)
    if speed.size < 3:
        return np.zeros(0, dtype=np.int64)
    found, _ = find_peaks(-speed, prominence=max(float(min_depth), 1e-12), distance=max(int(min_gap), 1))
    return np.asarray(found, dtype=np.int64)
