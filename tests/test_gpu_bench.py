"""Training steps on a CUDA device: the bench's instruments, bf16 autocast and the largest-batch probe."""

import math

import numpy as np
import pytest
import torch

from ablations.bench import measure_case
from ablations.bench_cases import case_config
from ablations.gpu_measure import case, largest_batch, probe_step

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]
CUDA = torch.device("cuda", 0)


@pytest.mark.parametrize("key", ["decomposition", "composition", "style-original"])
def test_a_tiny_training_step_runs_on_cuda_in_fp32_and_bf16(key):
    c = case(key)
    cfg = case_config(c, "tiny")
    fp32 = measure_case(c, cfg, CUDA, steps=2, warmup=1, precision="fp32")
    bf16 = measure_case(c, cfg, CUDA, steps=2, warmup=1, precision="bf16")
    for res in (fp32, bf16):
        assert res["memory_method"] == "cuda max_memory_allocated" and res["peak_bytes"] > 0
        assert all(loss is not None and math.isfinite(loss) for loss in res["plain"].losses)
        assert res["lightning"].median_ms > 0 and res["plain"].median_ms > 0
    # same seed, same batch, same CUDA generator: the first loss differs only by the autocast precision
    a, b = fp32["plain"].losses[0], bf16["plain"].losses[0]
    assert abs(a - b) <= 0.05 * max(abs(a), 1e-3), (a, b)


def test_the_largest_batch_probe_measures_growing_memory_on_cuda():
    rows, reason = largest_batch(probe_step("decomposition", CUDA, preset="tiny"), start=8, cap=64)
    assert [r["batch"] for r in rows] == [8, 16, 32, 64] and all(r["fits"] for r in rows)
    assert reason.startswith("reached the cap 64")
    peaks = [r["peak_mem_mb"] for r in rows]
    assert peaks[0] > 0 and peaks[-1] > peaks[0]


def test_the_torch_spectrogram_on_cuda_is_the_cpu_one():
    from datamodules.audio_torch import torch_power_spectrogram
    from datamodules.config import FeatureConfig

    cfg = FeatureConfig()
    t = np.arange(3 * cfg.sample_rate) / cfg.sample_rate
    wave = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)
    cpu = torch_power_spectrogram(wave, cfg, "cpu")
    gpu = torch_power_spectrogram(wave, cfg, "cuda")
    assert gpu.shape == cpu.shape
    assert np.allclose(gpu, cpu, rtol=1e-4, atol=1e-6 * cpu.max())


def test_the_profile_of_a_cuda_step_counts_kernels_and_busy_time():
    from ablations.gpu_measure import profile_step

    res = profile_step("decomposition", CUDA, 8, preset="tiny", steps=2, warmup=1)
    assert res["kernels_per_step"] > 10 and 0 < res["busy_ms"] <= res["wall_ms"] * 1.05
    assert 0 < res["busy_share"] <= 1.05 and res["top"] and res["top"][0]["ms_per_step"] > 0
