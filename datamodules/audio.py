"""Music in, per-frame features and beats out, at the pose frame rate (15 fps).

Every source of data (synthetic, imported, prepared) and generation on new music go through these
functions, so a model always meets features computed the way it was trained on.

Feature definition (`FeatureConfig`, stored in dataset.json):
- `mfcc_energy_delta` (default, 28 numbers): 13 MFCCs and the log-energy of each frame, then their
  first-order deltas. Mono audio at 22,050 Hz, pre-emphasis 0.97, a 0.0667 s Hann window, 40 mel
  filters between 133.33 and 6855.5 Hz, one frame every 1/15 s (hop = sample_rate / fps samples),
  frame t centred on time t / fps. These are the original release's parameters; the original used a
  Sphinx-style routine rather than librosa, so numbers differ slightly from that release.
- `mfcc`: the 13 MFCCs alone (plus deltas); `logmel`: the n_mels log-mel energies (plus deltas).

The FFT size is `n_fft`, raised to the next power of two when the window is longer than that (a
0.0667 s window is 1471 samples at 22,050 Hz, so 2048): a Sphinx-style routine silently truncates
the frame to 512 samples, while librosa needs the FFT to hold the whole window, and using the whole
window is the intent of the window length. Log-mel uses the natural log with a fixed floor (not dB
relative to the clip's maximum), so a frame's features never depend on the rest of the clip.
"""

from __future__ import annotations

import importlib.util
import math
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import scipy.fft

from common.errors import D2MError
from datamodules.config import FeatureConfig

UNIT_FRAMES = 32
FPS = 15
SILENCE_PEAK = 1e-4  # peak amplitude below which a file counts as silence
LOG_FLOOR = 1e-10
FEATURE_KINDS = ("mfcc_energy_delta", "mfcc", "logmel")
BEAT_HOP = 512  # onset-envelope hop for beat tracking: finer than one 15 fps frame


def feature_spec(cfg: FeatureConfig) -> dict:
    """The feature definition as a plain dict, the form stored in dataset.json and checkpoints."""
    return asdict(cfg)


def feature_dim(cfg: FeatureConfig) -> int:
    """Numbers per frame for a feature config (28 for the default)."""
    if cfg.kind == "mfcc_energy_delta":
        base = cfg.n_mfcc + 1
    elif cfg.kind == "mfcc":
        base = cfg.n_mfcc
    elif cfg.kind == "logmel":
        base = cfg.n_mels
    else:
        raise D2MError(f"unknown features.kind '{cfg.kind}'; known: {', '.join(FEATURE_KINDS)}")
    return base * 2 if cfg.deltas else base


def hop_length(cfg: FeatureConfig) -> int:
    """Samples per feature frame; the sample rate must hold a whole number of frames per second."""
    if cfg.sample_rate % cfg.fps:
        raise D2MError(
            f"features.sample_rate {cfg.sample_rate} is not a multiple of features.fps {cfg.fps}: "
            "frames would drift against the poses"
        )
    return cfg.sample_rate // cfg.fps


def window_length(cfg: FeatureConfig) -> int:
    return max(1, int(round(cfg.window_seconds * cfg.sample_rate)))


def fft_size(cfg: FeatureConfig) -> int:
    win = window_length(cfg)
    return cfg.n_fft if cfg.n_fft >= win else 2 ** math.ceil(math.log2(win))


def mel_filters(cfg: FeatureConfig) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) Slaney-style mel filter bank, librosa's default."""
    import librosa

    return librosa.filters.mel(
        sr=cfg.sample_rate, n_fft=fft_size(cfg), n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax
    ).astype(np.float64)


def load_audio(path: str | Path, sample_rate: int, min_frames: int = UNIT_FRAMES,
               fps: int = FPS) -> np.ndarray:
    """Read any file soundfile or audioread can decode as mono float32 at `sample_rate`.

    Raises D2MError naming the file for a missing, empty, undecodable or silent file, and for audio
    shorter than `min_frames` pose frames (one dance unit by default): nothing downstream can use it.
    """
    p = Path(path)
    if not p.exists():
        raise D2MError(f"audio file not found: {p}")
    if not p.is_file():
        raise D2MError(f"audio path is not a file: {p}")
    if p.stat().st_size == 0:
        raise D2MError(f"audio file is empty (0 bytes): {p}")
    import librosa

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # librosa warns before falling back to audioread
            wave, _ = librosa.load(p, sr=sample_rate, mono=True)
    except Exception as err:  # soundfile, audioread and numpy each raise their own types
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise D2MError(f"cannot decode audio file {p}: {detail}") from None
    warn_if_band_limited(p)
    return check_wave(wave, sample_rate, str(p), min_frames=min_frames, fps=fps)


def warn_if_band_limited(path: Path, top: float = FeatureConfig.fmax) -> bool:
    """Warn (stderr, naming the file) when its sample rate cannot hold the features' upper mel band.

    Audio sampled at 8 kHz has nothing above 4 kHz, while the mel filters reach `top` (6855.5 Hz):
    the missing band shifts the MFCCs and can change the style a model predicts for the same music.
    Returns True when it warned.
    """
    import soundfile as sf

    try:
        native = float(sf.info(str(path)).samplerate)
    except Exception:  # formats soundfile cannot open (mp3 via audioread, ...): no rate to judge by
        return False
    if native / 2 >= top:
        return False
    import sys

    print(f"d2m: warning: audio file {path} is sampled at {native:g} Hz, so it has no content above "
          f"{native / 2:g} Hz; the features use up to {top:g} Hz (the {native / 2:g}-{top:g} Hz band is missing), "
          "which can change the predicted style: use audio sampled at 16 kHz or more", file=sys.stderr, flush=True)
    return True


def check_wave(wave: np.ndarray, sample_rate: int, name: str, min_frames: int = UNIT_FRAMES,
               fps: int = FPS) -> np.ndarray:
    """Validate decoded audio (shared by files and in-memory waves); returns float32 mono."""
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1:
        raise D2MError(f"audio {name}: expected mono samples, got shape {wave.shape}")
    if wave.size == 0:
        raise D2MError(f"audio file contains no samples: {name}")
    if not np.all(np.isfinite(wave)):
        raise D2MError(f"audio file contains NaN or infinite samples: {name}")
    peak = float(np.max(np.abs(wave)))
    if peak < SILENCE_PEAK:
        raise D2MError(f"audio file is silent (peak amplitude {peak:.2e}): {name}")
    need = min_frames / fps
    have = wave.size / sample_rate
    if have < need:
        raise D2MError(
            f"audio file is too short: {name} lasts {have:.2f} s, at least {need:.2f} s "
            f"({min_frames} frames at {fps} fps, one dance unit) is needed"
        )
    return wave


def compute_features(wave: np.ndarray, sr: int, cfg: FeatureConfig) -> np.ndarray:
    """(T, F) float32 features at cfg.fps, T = whole frames in the audio; resamples if sr differs."""
    feature_dim(cfg)  # validates the kind
    wave = np.asarray(wave, dtype=np.float32)
    if sr != cfg.sample_rate:
        import librosa

        wave = librosa.resample(wave, orig_sr=sr, target_sr=cfg.sample_rate)
    if cfg.backend == "torchaudio":
        from datamodules.audio_torch import compute_features_torch

        return compute_features_torch(wave, cfg)
    if cfg.backend != "librosa":
        raise D2MError(f"unknown features.backend '{cfg.backend}'; known: librosa, torchaudio")
    power = _power_spectrogram(wave, cfg)
    return finish_features(power, mel_filters(cfg), cfg, n_frames=wave.size // hop_length(cfg))


def _power_spectrogram(wave: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    import librosa

    y = preemphasise(wave, cfg.preemphasis)
    spec = librosa.stft(
        y.astype(np.float32), n_fft=fft_size(cfg), hop_length=hop_length(cfg),
        win_length=window_length(cfg), window="hann", center=True, pad_mode="constant",
    )
    return np.abs(spec).astype(np.float64) ** 2


def preemphasise(wave: np.ndarray, coef: float) -> np.ndarray:
    """y[n] - coef * y[n-1], the first sample kept as it is (the Sphinx and python_speech_features rule)."""
    wave = np.asarray(wave, dtype=np.float32)
    if not coef or wave.size < 2:
        return wave
    return np.concatenate([wave[:1], wave[1:] - np.float32(coef) * wave[:-1]])


def finish_features(power: np.ndarray, mel_fb: np.ndarray, cfg: FeatureConfig, n_frames: int) -> np.ndarray:
    """Power spectrogram (n_freq, frames) -> (n_frames, F): the part every backend shares.

    Kept in numpy (float64) so that backends differ only in how they get the power spectrogram.
    """
    power = power[:, :n_frames]
    log_mel = np.log(mel_fb @ power + LOG_FLOOR)
    if cfg.kind == "logmel":
        base = log_mel
    else:
        mfcc = scipy.fft.dct(log_mel, type=2, norm="ortho", axis=0)[: cfg.n_mfcc]
        if cfg.kind == "mfcc_energy_delta":
            energy = np.log(power.sum(axis=0, keepdims=True) + LOG_FLOOR)
            base = np.concatenate([mfcc, energy], axis=0)
        else:
            base = mfcc
    feats = base.T  # (T, D)
    if cfg.deltas:
        feats = np.concatenate([feats, deltas(feats, cfg.delta_width)], axis=1)
    return np.ascontiguousarray(feats, dtype=np.float32)


def deltas(feats: np.ndarray, width: int) -> np.ndarray:
    """First-order regression deltas over +-width//2 frames (HTK formula), edges padded by repetition."""
    n = max(1, width // 2)
    padded = np.pad(feats, ((n, n), (0, 0)), mode="edge")
    t = feats.shape[0]
    num = sum(k * (padded[n + k : n + k + t] - padded[n - k : n - k + t]) for k in range(1, n + 1))
    return num / (2.0 * sum(k * k for k in range(1, n + 1)))


def _beat_track(wave: np.ndarray, sr: int) -> tuple[float, np.ndarray]:
    import librosa

    env = librosa.onset.onset_strength(y=np.asarray(wave, dtype=np.float32), sr=sr, hop_length=BEAT_HOP)
    tempo, times = librosa.beat.beat_track(onset_envelope=env, sr=sr, hop_length=BEAT_HOP, units="time")
    return float(np.atleast_1d(tempo)[0]), np.asarray(times, dtype=np.float64)


def music_beats(wave: np.ndarray, sr: int, fps: int = FPS) -> np.ndarray:
    """Music beats as sorted, unique int64 frame indices at `fps` (librosa's tracker, onset envelope)."""
    _, times = _beat_track(wave, sr)
    return np.unique(np.round(times * fps).astype(np.int64))


def warm_beat_tracker(sr: int = FeatureConfig.sample_rate) -> None:
    """Compile librosa's beat tracker in this process, before several processes would at once.

    Its numba gufuncs are compiled on first use and cached beside librosa's code; two processes
    compiling them at the same moment can leave the cache's files mixed (numba issue #10128), and
    every later call in any process then segfaults. A command that starts processes in parallel
    calls this first: with the cache written, they only read it. A second call costs milliseconds.
    Without librosa (the GPU check's machine) there is nothing to compile.
    """
    if importlib.util.find_spec("librosa") is None:
        return
    t = np.arange(4 * sr) / sr
    clicks = (np.sin(2 * np.pi * 880 * t) * (np.mod(t, 0.5) < 0.03)).astype(np.float32)
    music_beats(clicks, sr)


def music_tempo(wave: np.ndarray, sr: int) -> float:
    """librosa's global tempo estimate in beats per minute."""
    return _beat_track(wave, sr)[0]


def write_wav(path: str | Path, wave: np.ndarray, sr: int) -> Path:
    """Atomically write 16-bit PCM WAV (the canonical dataset's music format)."""
    import soundfile as sf

    from common.atomic import write_with

    data = np.clip(np.asarray(wave, dtype=np.float32), -1.0, 1.0)
    return write_with(path, lambda tmp: sf.write(str(tmp), data, sr, subtype="PCM_16", format="WAV"))
