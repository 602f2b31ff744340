"""Stick-figure rendering of a dance to MP4 (with its music) or GIF.

A dance is looked at more than it is measured: every rendered video has the figure fitted to the
frame once for the whole dance (so travelling and jumps stay visible and the scale does not pump),
the right side of the body in warm colours and the left in cool ones (so turns read as turns), and
the music muxed in and cut to whichever of dance and music ends first.
"""

from __future__ import annotations

import functools
import math
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from common.atomic import atomic_path
from common.errors import D2MError

N_JOINTS = 14
# DESIGN.md joint order: 0 nose, 1 neck, 2-4 right arm, 5-7 left arm, 8-10 right leg, 11-13 left leg.
_LOCAL_BONES: tuple[tuple[int, int], ...] = (
    (1, 8), (1, 11), (8, 11),  # torso
    (0, 1),  # neck
    (1, 2), (2, 3), (3, 4),  # right arm
    (1, 5), (5, 6), (6, 7),  # left arm
    (8, 9), (9, 10),  # right leg
    (11, 12), (12, 13),  # left leg
)
_RIGHT = {2, 3, 4, 8, 9, 10}
_LEFT = {5, 6, 7, 11, 12, 13}
_COLOURS = {"right": (214, 69, 65), "left": (52, 110, 196), "centre": (60, 60, 60)}
_BACKGROUND = (250, 250, 247)
_SUPERSAMPLE = 2  # draw at twice the size and shrink: smooth lines without an anti-aliasing library


def bones() -> list[tuple[int, int]]:
    """The skeleton's bones as joint-index pairs, in drawing order (from datamodules.skeleton if there)."""
    try:
        from datamodules import skeleton
    except ImportError:
        return list(_LOCAL_BONES)
    for name in ("DRAW_ORDER", "BONES"):
        found = getattr(skeleton, name, None)
        if callable(found):
            found = found()
        try:
            pairs = [(int(a), int(b)) for a, b in found]
        except (TypeError, ValueError):
            continue
        if pairs and all(0 <= a < N_JOINTS and 0 <= b < N_JOINTS for a, b in pairs):
            return pairs
    return list(_LOCAL_BONES)


def _as_joints(poses: Any) -> np.ndarray:
    if hasattr(poses, "detach"):
        poses = poses.detach().cpu().numpy()
    p = np.asarray(poses, dtype=np.float64)
    if p.ndim == 2 and p.shape[1] == 2 * N_JOINTS:
        p = p.reshape(len(p), N_JOINTS, 2)
    if p.ndim != 3 or p.shape[1:] != (N_JOINTS, 2) or len(p) == 0:
        raise D2MError(f"render: poses must be (T, 14, 2) or (T, 28) pixels with T >= 1, got {np.shape(poses)}")
    return p


def fit_to_frame(poses: np.ndarray, size: tuple[int, int], margin: float = 0.08) -> np.ndarray:
    """Map pixel poses into a (width, height) frame: one uniform scale and offset for the whole dance."""
    w, h = size
    pts = poses.reshape(-1, 2)
    pts = pts[np.all(np.isfinite(pts), axis=1)]
    if len(pts) == 0:
        return np.full_like(poses, np.nan)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    span = np.maximum(hi - lo, 1e-6)
    # leave room above the nose for the head circle
    head = 0.12 * span[1]
    lo = lo - np.array([0.0, head])
    span = span + np.array([0.0, head])
    avail = np.array([w, h], dtype=np.float64) * (1.0 - 2.0 * margin)
    scale = float(np.min(avail / span))
    if not math.isfinite(scale) or scale <= 0 or np.all(hi - lo < 1e-3):
        scale = 1.0
    centre_src = lo + span / 2.0
    centre_dst = np.array([w, h], dtype=np.float64) / 2.0
    return (poses - centre_src) * scale + centre_dst


@functools.lru_cache(maxsize=8)
def _font(px: int):
    try:
        return ImageFont.load_default(size=px)
    except TypeError:  # older Pillow without scalable default font
        return ImageFont.load_default()


def _side(a: int, b: int) -> str:
    if {a, b} & _RIGHT and {a, b} & _LEFT:  # e.g. the hip line
        return "centre"
    if a in _RIGHT or b in _RIGHT:
        return "right"
    if a in _LEFT or b in _LEFT:
        return "left"
    return "centre"


def draw_frame(pose: np.ndarray, size: tuple[int, int], bone_list: Sequence[tuple[int, int]],
               line: float, title: str | None = None, progress: float | None = None) -> np.ndarray:
    """One (H, W, 3) uint8 frame of a pose already in frame coordinates (14, 2)."""
    w, h = size
    k = _SUPERSAMPLE
    img = Image.new("RGB", (w * k, h * k), _BACKGROUND)
    d = ImageDraw.Draw(img)
    p = pose * k
    lw = max(int(round(line * k)), 1)
    ok = np.all(np.isfinite(p), axis=1)
    for a, b in bone_list:
        if ok[a] and ok[b]:
            d.line([tuple(p[a]), tuple(p[b])], fill=_COLOURS[_side(a, b)], width=lw)
    r = lw * 0.9
    for j in range(N_JOINTS):
        if ok[j] and j != 0:
            colour = _COLOURS["right" if j in _RIGHT else "left" if j in _LEFT else "centre"]
            d.ellipse([p[j, 0] - r, p[j, 1] - r, p[j, 0] + r, p[j, 1] + r], fill=colour)
    if ok[0]:
        neck = np.linalg.norm(p[0] - p[1]) if ok[1] else 8.0 * lw
        hr = max(0.55 * neck, 2.0 * lw)
        d.ellipse([p[0, 0] - hr, p[0, 1] - hr, p[0, 0] + hr, p[0, 1] + hr], outline=_COLOURS["centre"],
                  width=max(lw * 2 // 3, 1), fill=(235, 232, 225))
    if progress is not None:
        bar = max(3 * k, h * k // 160)
        d.rectangle([0, h * k - bar, int(round(progress * w * k)), h * k], fill=(150, 150, 150))
    if title:
        d.text((10 * k, 8 * k), title, fill=(30, 30, 30), font=_font(14 * k))
    img = img.reduce(k)  # box filter over each k x k block
    return np.asarray(img, dtype=np.uint8)


def render_frames(poses: Any, size: tuple[int, int] = (480, 480), title: str | None = None) -> Iterator[
        np.ndarray]:
    """The frames of a dance, one (H, W, 3) uint8 array at a time (a long dance never sits in memory)."""
    joints = _as_joints(poses)
    size = (int(size[0]), int(size[1]))
    fitted = fit_to_frame(joints, size)
    line = max(min(size) / 90.0, 1.5)
    bone_list = bones()
    n = len(fitted)
    for t in range(n):
        yield draw_frame(fitted[t], size, bone_list, line, title, progress=(t + 1) / n)


def _even(size: tuple[int, int]) -> tuple[int, int]:
    w, h = int(size[0]), int(size[1])
    if w < 16 or h < 16:
        raise D2MError(f"render: frame size {size} is too small (at least 16 x 16)")
    return w + (w % 2), h + (h % 2)  # libx264 with yuv420p needs even sizes


def _write_mp4(frames: Iterator[np.ndarray], tmp: Path, size: tuple[int, int], fps: float,
               audio_path: Path | None) -> None:
    """Encode the frames; with music, mux it in a second pass, cut to the shorter of the two.

    The music is added from a finished video file rather than while frames are piped in: when the
    music is the shorter, ffmpeg would stop reading the pipe in the middle of the dance.
    """
    import imageio_ffmpeg

    video = tmp if audio_path is None else tmp.with_name(tmp.stem + ".video.mp4")
    try:
        writer = imageio_ffmpeg.write_frames(str(video), size, fps=fps, codec="libx264",
                                             pix_fmt_out="yuv420p", macro_block_size=2,
                                             ffmpeg_log_level="error")
        writer.send(None)
        try:
            for f in frames:
                writer.send(np.ascontiguousarray(f))
        finally:
            writer.close()
        if audio_path is not None:
            cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-i", str(video), "-i", str(audio_path),
                   "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "aac", "-shortest", str(tmp)]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                raise D2MError(f"render: could not add the music {audio_path} to the video: "
                               f"{done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}")
    finally:
        if video != tmp and video.exists():
            video.unlink()


def _write_gif(frames: Iterator[np.ndarray], tmp: Path, fps: float) -> None:
    first = Image.fromarray(next(frames))
    rest = (Image.fromarray(f) for f in frames)
    # GIF delays are whole centiseconds: 1/15 s is stored as 7 cs
    first.save(tmp, format="GIF", save_all=True, append_images=rest, duration=int(round(1000.0 / fps)),
               loop=0, optimize=False)


def render_dance(poses: Any, out_path: str | Path, audio_path: str | Path | None = None, fps: float = 15,
                 size: tuple[int, int] = (480, 480), title: str | None = None) -> Path:
    """Render a dance as a stick figure to `out_path` (.mp4 or .gif), written atomically.

    `poses` are (T, 14, 2) or (T, 28) pixel coordinates (x right, y down; NaN joints are left out).
    An MP4 is H.264/yuv420p at `fps`; with `audio_path` the music is muxed in (AAC) and the video ends
    where the shorter of dance and music ends. A GIF has no sound (the audio is ignored); identical
    consecutive frames may be merged by the GIF encoder, with their delays added up.
    """
    out_path = Path(out_path)
    suffix = out_path.suffix.lower()
    if suffix not in (".mp4", ".gif"):
        raise D2MError(f"render: {out_path} must end in .mp4 or .gif")
    if fps <= 0:
        raise D2MError(f"render: fps must be > 0, got {fps}")
    audio = Path(audio_path) if audio_path is not None else None
    if audio is not None and not audio.is_file():
        raise D2MError(f"render: audio file {audio} does not exist")
    size = _even(size)
    frames = render_frames(poses, size, title)
    with atomic_path(out_path) as tmp:
        if suffix == ".mp4":
            _write_mp4(frames, tmp, size, fps, audio)
        else:
            _write_gif(frames, tmp, fps)
    return out_path
