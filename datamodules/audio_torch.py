"""The torchaudio feature backend: the spectrogram and mel filter bank on a torch device (GPU).

Offered only where torchaudio imports. It must give librosa's numbers (a test holds it to them), so
it shares everything after the mel filter bank with the librosa path (`audio.finish_features`): the
only part computed in torch is the short-time power spectrum, the bulk of the
work on long music, and the filter bank comes from torchaudio with librosa's (Slaney) definition.
"""

from __future__ import annotations

import functools
import importlib.util

import numpy as np

from common.errors import D2MError
from datamodules.audio import fft_size, finish_features, hop_length, preemphasise, window_length
from datamodules.config import FeatureConfig


@functools.cache
def torchaudio_available() -> bool:
    """True only where torchaudio really imports: a build made for another torch fails to load its library."""
    if importlib.util.find_spec("torchaudio") is None:
        return False
    try:
        import torchaudio.functional  # noqa: F401
    except Exception:  # ImportError, or OSError from a mismatched compiled extension
        return False
    return True


def torchaudio_mel_filters(cfg: FeatureConfig) -> np.ndarray:
    """(n_mels, n_freq) filter bank from torchaudio, defined as librosa's (Slaney scale and norm)."""
    import torchaudio.functional as AF

    fb = AF.melscale_fbanks(
        n_freqs=fft_size(cfg) // 2 + 1, f_min=cfg.fmin, f_max=cfg.fmax, n_mels=cfg.n_mels,
        sample_rate=cfg.sample_rate, norm="slaney", mel_scale="slaney",
    )
    return fb.T.double().numpy()


def torch_power_spectrogram(wave: np.ndarray, cfg: FeatureConfig, device: str | None = None) -> np.ndarray:
    """(n_freq, frames) power spectrum computed with torch.stft, framed exactly as librosa frames."""
    import torch

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    y = torch.as_tensor(preemphasise(wave, cfg.preemphasis), device=dev)
    win = window_length(cfg)
    spec = torch.stft(
        y, n_fft=fft_size(cfg), hop_length=hop_length(cfg), win_length=win,
        window=torch.hann_window(win, periodic=True, device=dev), center=True, pad_mode="constant",
        return_complex=True,
    )
    return (spec.abs().double() ** 2).cpu().numpy()


def compute_features_torch(wave: np.ndarray, cfg: FeatureConfig, device: str | None = None) -> np.ndarray:
    """Same output as `audio.compute_features` with the librosa backend, for audio at cfg.sample_rate."""
    if not torchaudio_available():
        raise D2MError("features.backend 'torchaudio' needs torchaudio, which does not import here; "
                       "use 'librosa'")
    power = torch_power_spectrogram(wave, cfg, device)
    return finish_features(power, torchaudio_mel_filters(cfg), cfg, n_frames=len(wave) // hop_length(cfg))
