"""Small music files for tests that feed a command an audio path."""

import wave
from pathlib import Path

import numpy as np


def write_click_track(path: Path, seconds: float = 4.0, sr: int = 22050) -> Path:
    """A 16-bit mono WAV: a tone with a click every half second, enough for features and beats."""
    t = np.arange(int(sr * seconds)) / sr
    x = 0.3 * np.sin(2 * np.pi * 220 * t)
    x[(np.arange(len(t)) % (sr // 2)) < 200] += 0.5
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype(np.int16).tobytes())
    return path
