"""Audio loading, features and beats: formats, bad files, and the feature definition."""

import numpy as np
import pytest
import soundfile as sf

from common.errors import D2MError
from datamodules.audio import (
    compute_features,
    deltas,
    feature_dim,
    hop_length,
    load_audio,
    mel_filters,
    music_beats,
)
from datamodules.audio_torch import torch_power_spectrogram, torchaudio_available
from datamodules.config import FeatureConfig

SR = 22050


def clicks(seconds: float, sr: int = SR, bpm: float = 120.0) -> np.ndarray:
    """A tone with a click on every beat: loud enough, long enough, and with beats to find."""
    t = np.arange(int(seconds * sr)) / sr
    wave = 0.1 * np.sin(2 * np.pi * 220 * t)
    period = 60.0 / bpm
    for onset in np.arange(0.25, seconds, period):
        i = int(onset * sr)
        n = min(int(0.03 * sr), t.size - i)
        wave[i : i + n] += 0.6 * np.exp(-np.arange(n) / (0.005 * sr)) * np.sin(2 * np.pi * 1500 * t[:n])
    return wave.astype(np.float32)


@pytest.mark.parametrize("fmt,ext", [("WAV", "wav"), ("FLAC", "flac"), ("OGG", "ogg")])
def test_load_formats_stereo_any_rate(tmp_path, fmt, ext):
    wave = clicks(3.0, 44100)
    stereo = np.stack([wave, 0.5 * wave], axis=1)
    path = tmp_path / f"music.{ext}"
    sf.write(path, stereo, 44100, format=fmt)
    out = load_audio(path, SR)
    assert out.dtype == np.float32 and out.ndim == 1
    assert abs(out.size - 3.0 * SR) <= SR * 0.01
    assert np.max(np.abs(out)) > 0.1


def _write_bytes(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda p: p / "absent.wav", "not found"),
        (lambda p: _write_bytes(p / "empty.wav", b""), "empty"),
        (lambda p: _write_bytes(p / "corrupt.wav", b"RIFF\x00\x00garbage" * 50), "cannot decode"),
    ],
)
def test_bad_audio_files_name_the_file(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(D2MError, match=message) as err:
        load_audio(path, SR)
    assert path.name in str(err.value)


def test_silence_and_too_short_are_errors(tmp_path):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(SR * 4, dtype=np.float32), SR)
    with pytest.raises(D2MError, match="silent") as err:
        load_audio(silent, SR)
    assert "silent.wav" in str(err.value)
    short = tmp_path / "short.wav"
    sf.write(short, clicks(32 / 15 - 0.2), SR)  # just under one 32-frame unit
    with pytest.raises(D2MError, match="too short") as err:
        load_audio(short, SR)
    assert "short.wav" in str(err.value)
    ok = tmp_path / "ok.wav"
    sf.write(ok, clicks(32 / 15 + 0.1), SR)
    assert load_audio(ok, SR).size > 0


def test_default_features_shape_and_frame_rate():
    cfg = FeatureConfig()
    wave = clicks(4.0)
    feats = compute_features(wave, SR, cfg)
    assert feature_dim(cfg) == 28
    assert feats.shape == (wave.size // hop_length(cfg), 28) == (60, 28)
    assert feats.dtype == np.float32 and np.all(np.isfinite(feats))
    # same music at another sample rate gives nearly the same features (resampled first)
    import librosa

    other = librosa.resample(wave, orig_sr=SR, target_sr=44100)
    again = compute_features(other, 44100, cfg)
    assert again.shape == feats.shape
    assert np.median(np.abs(again[:, :13] - feats[:, :13])) < 0.5


def test_feature_kinds_and_bad_kind():
    assert feature_dim(FeatureConfig(kind="mfcc")) == 26
    assert feature_dim(FeatureConfig(kind="logmel", deltas=False)) == 40
    feats = compute_features(clicks(3.0), SR, FeatureConfig(kind="logmel"))
    assert feats.shape[1] == 80
    with pytest.raises(D2MError, match="features.kind"):
        feature_dim(FeatureConfig(kind="chroma"))


def test_deltas_of_a_ramp_are_its_slope():
    ramp = np.arange(20, dtype=float)[:, None] * 3.0
    d = deltas(ramp, 5)
    assert np.allclose(d[2:-2], 3.0)


def test_torch_spectrogram_matches_librosa():
    """The torch path (used by the torchaudio backend) gives librosa's numbers."""
    cfg = FeatureConfig()
    wave = clicks(3.0)
    from datamodules.audio import finish_features

    ref = compute_features(wave, SR, cfg)
    power = torch_power_spectrogram(wave, cfg, "cpu")
    ours = finish_features(power, mel_filters(cfg), cfg, wave.size // hop_length(cfg))
    assert np.allclose(ours, ref, atol=1e-3)


@pytest.mark.skipif(not torchaudio_available(), reason="torchaudio does not import here")
def test_torchaudio_backend_matches_librosa():
    wave = clicks(3.0)
    ref = compute_features(wave, SR, FeatureConfig())
    ours = compute_features(wave, SR, FeatureConfig(backend="torchaudio"))
    assert np.allclose(ours, ref, atol=1e-3)


def test_music_beats_are_frame_indices_at_15_fps():
    beats = music_beats(clicks(8.0, bpm=120.0), SR, fps=15)
    assert beats.dtype == np.int64
    # 120 bpm = a beat every 7.5 frames
    assert abs(np.median(np.diff(beats)) - 7.5) <= 0.5
    assert beats.max() < 8 * 15
