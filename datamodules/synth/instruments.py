"""Sound primitives for the synthetic music: a few lines of numpy each, no samples on disk.

They aim at spectra that MFCCs tell apart (sustained harmonic tones, pitched drums, bright noise,
sub bass), not at realism. Each returns a float64 waveform starting at its onset; `place` mixes
copies into a track. Timbre knobs come in as arguments so each clip can vary them.
"""

from __future__ import annotations

import numpy as np


def midi_hz(note: float) -> float:
    return 440.0 * 2.0 ** ((note - 69.0) / 12.0)


def _t(seconds: float, sr: int) -> np.ndarray:
    return np.arange(max(1, int(seconds * sr))) / sr


def envelope(n: int, sr: int, attack: float, release: float) -> np.ndarray:
    """Linear attack, flat sustain, linear release, over n samples."""
    env = np.ones(n)
    a = min(n, max(1, int(attack * sr)))
    r = min(n - a, max(1, int(release * sr))) if n > a else 0
    env[:a] = np.linspace(0.0, 1.0, a, endpoint=False)
    if r > 0:
        env[n - r :] *= np.linspace(1.0, 0.0, r)
    return env


def tone(freq: float, seconds: float, sr: int, amps: np.ndarray, attack: float, release: float,
         vibrato_rate: float = 0.0, vibrato_depth: float = 0.0, decay: float = 0.0) -> np.ndarray:
    """Additive harmonic tone; harmonics above 0.45 sr are dropped; optional vibrato and decay."""
    t = _t(seconds, sr)
    inst = freq * (1.0 + vibrato_depth * np.sin(2 * np.pi * vibrato_rate * t))
    phase = 2 * np.pi * np.cumsum(inst) / sr
    out = np.zeros_like(t)
    for k, amp in enumerate(amps, start=1):
        if k * freq * (1 + vibrato_depth) >= 0.45 * sr:
            break
        partial = amp * np.sin(k * phase)
        if decay > 0:  # higher partials die faster, as on a plucked string
            partial *= np.exp(-t * k / decay)
        out += partial
    return out * envelope(t.size, sr, attack, release)


def harmonic_amps(n: int, tilt: float) -> np.ndarray:
    """Amplitudes k^-tilt for k = 1..n: a bigger tilt gives a darker, smoother timbre."""
    return np.arange(1, n + 1, dtype=float) ** -tilt


def kick(sr: int, f_start: float, f_end: float, decay: float) -> np.ndarray:
    t = _t(decay * 5, sr)
    freq = f_end + (f_start - f_end) * np.exp(-t / 0.04)
    return np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.exp(-t / decay)


def noise_burst(sr: int, rng: np.random.Generator, decay: float, brightness: float) -> np.ndarray:
    """Exponentially decaying noise; `brightness` in [0, 1] mixes from low-passed to high-passed."""
    t = _t(decay * 6, sr)
    white = rng.standard_normal(t.size)
    high = np.diff(white, prepend=0.0) / 2.0
    low = np.convolve(white, np.ones(8) / 8.0, mode="same")
    return ((1 - brightness) * low + brightness * high) * np.exp(-t / decay)


def snare(sr: int, rng: np.random.Generator, body_hz: float, decay: float) -> np.ndarray:
    t = _t(decay * 6, sr)
    body = 0.6 * np.sin(2 * np.pi * body_hz * t) * np.exp(-t / (decay * 0.5))
    return body + noise_burst(sr, rng, decay, 0.7)[: t.size]


def drum(sr: int, freq: float, decay: float, drop: float = 0.15) -> np.ndarray:
    """Pitched hand drum (conga, bongo, woodblock): a sine that falls slightly in pitch."""
    t = _t(decay * 6, sr)
    f = freq * (1.0 + drop * np.exp(-t / 0.02))
    return np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t / decay)


def place(track: np.ndarray, sample: np.ndarray, onsets: np.ndarray, sr: int,
          gains: np.ndarray | float = 1.0) -> None:
    """Mix `sample` into `track` at each onset time (seconds), scaled by its gain, in place."""
    gains = np.broadcast_to(np.asarray(gains, dtype=float), np.shape(onsets))
    n = track.size
    for onset, gain in zip(np.asarray(onsets, dtype=float), gains):
        i = int(round(onset * sr))
        if i >= n or i + sample.size <= 0:
            continue
        lo = max(0, i)
        seg = sample[lo - i : min(sample.size, n - i)]
        track[lo : lo + seg.size] += gain * seg
