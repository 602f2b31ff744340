"""Stick-figure rendering: video length, the music's stream, GIF frames and a sane figure."""

import re
import subprocess
import wave

import numpy as np
import pytest

from common.errors import D2MError
from evaluation.render import render_dance, render_frames

FPS = 15


def standing_pose(cx: float = 300.0, ground: float = 500.0) -> np.ndarray:
    """A person about 225 px tall facing the camera, in the DESIGN joint order, pixels, y down."""
    rel = np.array([
        [0, -170], [0, -145],  # nose, neck
        [-32, -140], [-40, -95], [-44, -52],  # right shoulder, elbow, wrist
        [32, -140], [40, -95], [44, -52],  # left shoulder, elbow, wrist
        [-18, -55], [-20, 0], [-22, 55],  # right hip, knee, ankle
        [18, -55], [20, 0], [22, 55],  # left hip, knee, ankle
    ], dtype=np.float64)
    return rel + np.array([cx, ground - 55])


def waving_dance(n_frames: int) -> np.ndarray:
    out = []
    for t in range(n_frames):
        p = standing_pose(cx=300 + 40 * np.sin(2 * np.pi * t / 30))
        a = np.sin(2 * np.pi * t / 15)
        p[[4, 7]] += [[-20 * a, -60 * abs(a)], [20 * a, -60 * abs(a)]]
        out.append(p)
    return np.stack(out)


def write_wav(path, seconds: float, sr: int = 22050) -> None:
    t = np.arange(int(seconds * sr)) / sr
    x = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(x.tobytes())


def probe(path) -> tuple[float, bool]:
    """(container duration in seconds, whether an audio stream is present), from the ffmpeg binary."""
    import imageio_ffmpeg

    err = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
                         capture_output=True, text=True).stderr
    h, m, s = re.search(r"Duration: (\d+):(\d+):([\d.]+)", err).groups()
    return int(h) * 3600 + int(m) * 60 + float(s), bool(re.search(r"Stream #\S+.*: Audio:", err))


def test_mp4_lasts_as_long_as_the_dance_and_carries_the_music(tmp_path):
    n = 30
    audio = tmp_path / "music.wav"
    write_wav(audio, seconds=3.0)  # longer than the dance: cut to the dance
    out = render_dance(waving_dance(n), tmp_path / "dance.mp4", audio_path=audio, fps=FPS, size=(160, 160),
                       title="hiphop")
    duration, has_audio = probe(out)
    assert has_audio
    assert duration == pytest.approx(n / FPS, abs=1.0 / FPS)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_mp4_is_cut_to_shorter_music_and_silent_without_music(tmp_path):
    audio = tmp_path / "short.wav"
    write_wav(audio, seconds=1.0)
    out = render_dance(waving_dance(30).reshape(30, 28), tmp_path / "cut.mp4", audio_path=audio,
                       size=(160, 160))
    duration, has_audio = probe(out)
    assert has_audio and duration == pytest.approx(1.0, abs=1.0 / FPS)
    silent = render_dance(waving_dance(12), tmp_path / "silent.mp4", size=(160, 160))
    duration, has_audio = probe(silent)
    assert not has_audio and duration == pytest.approx(12 / FPS, abs=1.0 / FPS)


def test_gif_has_one_frame_per_pose(tmp_path):
    import imageio.v3 as iio

    n = 20
    out = render_dance(waving_dance(n), tmp_path / "dance.gif", size=(120, 120))
    frames = iio.imread(out, index=None)
    assert frames.shape[0] == n
    assert frames.shape[1:3] == (120, 120)


def test_standing_figure_is_fitted_inside_the_frame_and_upright():
    pose = standing_pose()
    pose[13] = np.nan  # a missing joint is left out, not drawn to the corner
    frame = next(render_frames(pose[None], size=(200, 200)))
    ink = np.any(frame < 200, axis=2)
    ink[-4:] = False  # the progress bar
    rows, cols = np.nonzero(ink)
    assert rows.min() > 5 and rows.max() < 195 and cols.min() > 5 and cols.max() < 195
    height, width = rows.max() - rows.min(), cols.max() - cols.min()
    assert height > 0.7 * 200 and height > 2 * width  # fills the frame, taller than wide: a standing person
    red = (frame[..., 0] > 150) & (frame[..., 2] < 120)
    blue = (frame[..., 2] > 150) & (frame[..., 0] < 120)
    # right side of the body (warm) is drawn on the image's left for a dancer facing the camera
    assert np.nonzero(red)[1].mean() < np.nonzero(blue)[1].mean()


def test_bad_requests_are_one_line_errors(tmp_path):
    with pytest.raises(D2MError, match=r"\.mp4 or \.gif"):
        render_dance(waving_dance(3), tmp_path / "dance.avi")
    with pytest.raises(D2MError, match="poses must be"):
        render_dance(np.zeros((5, 13, 2)), tmp_path / "dance.gif")
    with pytest.raises(D2MError, match="does not exist"):
        render_dance(waving_dance(3), tmp_path / "dance.mp4", audio_path=tmp_path / "missing.wav")
