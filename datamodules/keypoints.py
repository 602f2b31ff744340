"""Reading 2D keypoints from OpenPose JSON folders or .npy arrays, onto the 14-joint skeleton.

Accepted: OpenPose per-frame JSON (BODY_25 or COCO-18; `pose_keypoints_2d` as x, y, confidence
triples) and .npy arrays (T, J, 2) or (T, J, 3) with J = 14 (already ours), 18 (COCO-18) or 25
(BODY_25). Missing joints (OpenPose writes 0, 0 with confidence 0) and low-confidence joints are
filled by linear interpolation in time from the same joint's good frames; a joint never seen in a
clip cannot be filled and is an error, as is any NaN (a NaN would hide which frames are bad).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from common.errors import D2MError
from datamodules.skeleton import JOINT_NAMES, NUM_JOINTS

# indices of our 14 joints in each source layout
JOINT_MAPS: dict[int, list[int]] = {
    14: list(range(14)),
    18: list(range(14)),  # COCO-18: ours, then eyes and ears
    25: [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14],  # BODY_25 has MidHip at 8
}
LAYOUT_NAMES = {14: "d2m-lab 14 joints", 18: "COCO-18", 25: "BODY_25"}


def _frame_number(path: Path) -> tuple[int, str]:
    digits = re.findall(r"\d+", path.stem)
    return (int(digits[-1]) if digits else -1, path.name)


def read_openpose_folder(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """One clip's per-frame JSON files -> (T, J, 2) positions and (T, J) confidences, frames in order."""
    files = sorted(folder.glob("*.json"), key=_frame_number)
    if not files:
        raise D2MError(f"no OpenPose JSON files in {folder}")
    frames: list[np.ndarray | None] = []
    n_joints: int | None = None
    for path in files:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise D2MError(f"cannot parse OpenPose JSON {path}: {err}") from None
        people = data.get("people", []) if isinstance(data, dict) else None
        if not isinstance(people, list):
            got = "none" if people is None else f"a {type(people).__name__}"
            raise D2MError(f"OpenPose JSON {path}: 'people' must be a list of persons, got {got}")
        best = None
        for person in people:
            flat = person.get("pose_keypoints_2d", []) if isinstance(person, dict) else None
            if not isinstance(flat, list):
                raise D2MError(f"OpenPose JSON {path}: each person must hold a 'pose_keypoints_2d' list")
            if len(flat) % 3 or len(flat) // 3 not in (18, 25):
                raise D2MError(f"wrong keypoint shape in {path}: pose_keypoints_2d has {len(flat)} numbers, "
                               "expected 54 (COCO-18) or 75 (BODY_25)")
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in flat):
                bad = next(v for v in flat if not isinstance(v, (int, float)) or isinstance(v, bool))
                raise D2MError(f"non-numeric keypoints in {path}: pose_keypoints_2d holds {bad!r}")
            arr = np.asarray(flat, dtype=np.float64).reshape(-1, 3)
            if not np.all(np.isfinite(arr)):
                raise D2MError(f"NaN or infinite keypoints in {path}")
            if best is None or arr[:, 2].sum() > best[:, 2].sum():  # the most confidently seen person
                best = arr
        if best is not None:
            if n_joints is not None and best.shape[0] != n_joints:
                raise D2MError(f"wrong keypoint shape in {path}: {best.shape[0]} joints where earlier frames "
                               f"of {folder} have {n_joints}")
            n_joints = best.shape[0]
        frames.append(best)
    if n_joints is None:
        raise D2MError(f"no person detected in any frame of {folder}")
    pos = np.zeros((len(frames), n_joints, 2))
    conf = np.zeros((len(frames), n_joints))
    for t, arr in enumerate(frames):
        if arr is not None:
            pos[t], conf[t] = arr[:, :2], arr[:, 2]
    return pos, conf


def read_npy(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(T, J, 2|3) array -> positions and confidences (ones where the array has none)."""
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as err:  # numpy raises several types for damaged files
        raise D2MError(f"cannot read keypoints {path}: {err}") from None
    if arr.ndim != 3 or arr.shape[2] not in (2, 3) or arr.shape[1] not in JOINT_MAPS:
        raise D2MError(f"wrong keypoint shape in {path}: {arr.shape}; expected (T, J, 2) or (T, J, 3) "
                       f"with J in {', '.join(map(str, JOINT_MAPS))}")
    if not np.issubdtype(arr.dtype, np.number):
        raise D2MError(f"keypoints in {path} are not numbers ({arr.dtype})")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise D2MError(f"NaN or infinite keypoints in {path}")
    conf = arr[..., 2] if arr.shape[2] == 3 else np.ones(arr.shape[:2])
    return arr[..., :2], conf


def to_skeleton(pos: np.ndarray, conf: np.ndarray, name: str,
                threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Map to the 14 joints and fill missing or low-confidence entries; returns (T,14,2), (T,14)."""
    idx = JOINT_MAPS[pos.shape[1]]
    pos, conf = pos[:, idx].copy(), conf[:, idx].copy()
    bad = (conf < threshold) | np.all(pos == 0.0, axis=-1)
    frames = np.arange(pos.shape[0])
    for j in range(NUM_JOINTS):
        good = ~bad[:, j]
        if not good.any():
            raise D2MError(f"keypoints {name}: joint '{JOINT_NAMES[j]}' is never detected with confidence "
                           f">= {threshold}, so it cannot be filled")
        if not good.all():
            for c in range(2):
                pos[~good, j, c] = np.interp(frames[~good], frames[good], pos[good, j, c])
    conf[bad] = 0.0
    return pos, conf


def resample_time(values: np.ndarray, fps_in: float, fps_out: float) -> np.ndarray:
    """Linear resampling along axis 0 from fps_in to fps_out (frame t sits at time t / fps)."""
    n_out = int(math.floor((values.shape[0] - 1) * fps_out / fps_in + 1e-6)) + 1
    src = np.arange(n_out) * fps_in / fps_out
    i0 = np.minimum(np.floor(src).astype(np.int64), values.shape[0] - 1)
    i1 = np.minimum(i0 + 1, values.shape[0] - 1)
    a = (src - i0).reshape(-1, *([1] * (values.ndim - 1)))
    return (1 - a) * values[i0] + a * values[i1]
