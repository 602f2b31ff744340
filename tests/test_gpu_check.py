"""The GPU check's logic on any machine: batch search, feature reference, speed-up verdict, budget, CPU-only run."""

import json
import os
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from ablations.gpu_check import NO_CUDA, _spawn, check
from ablations.gpu_measure import feature_check, largest_batch, write_reference
from ablations.gpu_report import pair_speedup
from common.errors import D2MError
from datamodules.config import FeatureConfig

ROOT = Path(__file__).resolve().parents[1]


def fake_probe(limit, error=None, ms=1.0):
    """A step that 'fits' up to `limit` samples and then fails as an allocation (or `error`) would."""
    seen = []

    def probe(batch):
        seen.append(batch)
        if batch > limit:
            raise error or torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return ms, batch * 1e6

    probe.seen = seen
    return probe


def test_doubling_stops_at_the_first_failed_allocation():
    probe = fake_probe(1000)
    kept = []
    rows, reason = largest_batch(probe, start=64, on_row=kept.append)
    assert probe.seen == [64, 128, 256, 512, 1024]
    assert [r["batch"] for r in kept] == [64, 128, 256, 512]  # each fitting row as it comes
    assert [r["batch"] for r in rows if r["fits"]][-1] == 512 and not rows[-1]["fits"]
    assert reason == "out of memory at batch 1024"
    assert rows[0]["peak_mem_mb"] == pytest.approx(64e6 / 2**20)


def test_library_allocation_failures_count_as_out_of_memory_and_other_errors_do_not():
    _, reason = largest_batch(fake_probe(100, RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling")))
    assert reason == "out of memory at batch 128"
    rows, reason = largest_batch(fake_probe(100, RuntimeError("illegal memory access")))
    assert reason.startswith("failed at batch 128 (RuntimeError)") and "illegal memory access" in rows[-1]["note"]


def test_doubling_also_stops_at_the_cap_and_at_slow_steps():
    rows, reason = largest_batch(fake_probe(10**9), start=64, cap=512)
    assert [r["batch"] for r in rows] == [64, 128, 256, 512] and reason.startswith("reached the cap 512")
    rows, reason = largest_batch(fake_probe(10**9, ms=5000.0), start=64)
    assert [r["batch"] for r in rows] == [64] and "stopped doubling" in reason


def clicks(seconds, sr=22050):
    wave = np.zeros(int(seconds * sr), dtype=np.float32)
    wave[:: sr // 2] = 0.9
    return np.convolve(wave, np.hanning(200), mode="same").astype(np.float32) + 0.01


def test_feature_reference_round_trip_and_a_path_that_differs_is_caught(tmp_path):
    from datamodules.audio import compute_features, finish_features, hop_length, mel_filters
    from datamodules.audio_torch import torch_power_spectrogram

    cfg = FeatureConfig()
    t = np.arange(3 * cfg.sample_rate) / cfg.sample_rate
    waves = {"clicks": clicks(3.0), "tone": (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)}
    ref = write_reference(tmp_path / "ref.npz", waves, cfg.sample_rate, cfg)
    same = feature_check(ref, compute_features)
    assert same["ok"] and all(w["max_abs_diff"] == 0.0 for w in same["waves"].values())

    def torch_path(wave, sr, c):  # the torch spectrum that the torchaudio backend uses, librosa's filter bank
        return finish_features(torch_power_spectrogram(wave, c, "cpu"), mel_filters(c), c, wave.size // hop_length(c))

    res = feature_check(ref, torch_path)
    assert res["ok"] and 0 < max(w["max_abs_diff"] for w in res["waves"].values()) <= 1e-3
    off = feature_check(ref, lambda w, sr, c: compute_features(w, sr, c) + 0.01)
    assert not off["ok"] and off["waves"]["tone"]["max_abs_diff"] == pytest.approx(0.01, rel=1e-3)
    short = feature_check(ref, lambda w, sr, c: compute_features(w, sr, c)[:-1])
    assert not short["ok"] and short["waves"]["clicks"]["max_abs_diff"] == float("inf")
    with pytest.raises(D2MError, match="make gpu-check-prepare"):
        feature_check(tmp_path / "missing.npz", compute_features)
    with pytest.raises(D2MError, match="backend=librosa"):
        write_reference(tmp_path / "x.npz", waves, cfg.sample_rate, FeatureConfig(backend="torchaudio"))


def test_the_pair_speedup_is_against_the_carried_cpu_rows():
    row = {"batch": 256, "precision": "fp32", "compiled": False}
    grid = [{**row, "module": "decomposition", "plain_ms_per_step": 100.0},
            {**row, "module": "composition", "plain_ms_per_step": 120.0},
            {**row, "module": "composition", "precision": "bf16", "plain_ms_per_step": 60.0}]
    cpu = [{"module": "decomposition", "batch": 256, "plain_ms_per_step": 10000.0},
           {"module": "composition", "batch": 256, "plain_ms_per_step": 12000.0}]
    pair = pair_speedup(grid, cpu)
    assert pair["speedup"] == pytest.approx(100.0) and pair["met"] and pair["gpu_ms"] == 220.0
    assert "speedup_cpu_time" not in pair
    # the CPU-time figure, where present, decides: 22000 ms wall but 8800 ms of CPU time is 40x, under 50x
    timed = [{**r, "cpu_ms_per_step": r["plain_ms_per_step"] * 0.4} for r in cpu]
    pair = pair_speedup(grid, timed)
    assert pair["speedup"] == pytest.approx(100.0) and pair["speedup_cpu_time"] == pytest.approx(40.0)
    assert not pair["met"]
    slow_cpu = [{**r, "plain_ms_per_step": r["plain_ms_per_step"] / 5} for r in cpu]
    assert pair_speedup(grid, slow_cpu)["speedup"] == pytest.approx(20.0) and not pair_speedup(grid, slow_cpu)["met"]
    assert pair_speedup(grid[1:], cpu) is None  # no decomposition row: no verdict rather than a wrong one


def test_parts_past_the_budget_are_not_run_and_a_part_past_its_limit_is_reported(tmp_path):
    summary = check(tmp_path / "w", tmp_path / "data", budget=5, parts=["env", "tests"])
    assert all(r["line"].startswith("not run: ") for r in summary["parts"].values())
    assert (tmp_path / "w" / "summary.md").read_text().count("not run") == 2
    res = _spawn(["env"], "env", tmp_path / "w", tmp_path / "data", timeout=0.05)
    assert res["line"].startswith("timed out after") and res["ok"] is False


def run_script(tmp_path, **env):
    work, pack = tmp_path / "work", tmp_path / "out"
    out = subprocess.run(["bash", "scripts/gpu_check.sh", str(work), str(pack)], cwd=ROOT, capture_output=True,
                         text=True, env={**os.environ, "GPU_CHECK_DATA": str(tmp_path / "no-data"), **env}, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout, work, pack


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a CUDA machine the check runs every part")
def test_without_cuda_each_cuda_part_says_it_was_skipped_and_the_results_are_packed(tmp_path):
    stdout, work, pack = run_script(tmp_path, GPU_CHECK_PARTS="features,grid,profile,bench,maxbatch,train")
    for part in ("features", "grid", "profile", "bench", "maxbatch", "train"):
        line = next(ln for ln in stdout.splitlines() if ln.startswith(f"gpu-check {part}:"))
        assert f"{NO_CUDA} " in line, line
    assert sorted(p.name for p in pack.iterdir()) == ["gpu-check.log", "gpu-check.tar.gz", "summary.json",
                                                       "summary.md"]  # within the 8 files a device call returns
    with tarfile.open(pack / "gpu-check.tar.gz") as tar:
        assert "gpu-check/summary.json" in tar.getnames()
    assert (pack / "gpu-check.log").read_text().count(NO_CUDA) == 6
    assert (work / "summary.md").read_text().count(NO_CUDA) == 6


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="on a CUDA machine the check runs every part")
def test_make_gpu_check_without_cuda_runs_every_part_it_can(tmp_path):
    stdout, work, pack = run_script(tmp_path)
    assert "gpu-check env: no CUDA device;" in stdout
    summary = json.loads((work / "summary.json").read_text())
    assert set(summary["parts"]) == {"env", "features", "tests", "grid", "profile", "bench", "maxbatch", "train"}
    assert summary["parts"]["env"]["cuda"] is False and summary["parts"]["env"]["packages"]["omegaconf"] != "absent"
    assert summary["parts"]["tests"]["ok"] and "skipped" in summary["parts"]["tests"]["line"]
    assert "test_gpu_bench.py" in summary["parts"]["tests"]["files"]


@pytest.mark.parametrize("key", ["decomposition", "composition", "style-original", "style-improved"])
def test_step_flops_scale_exactly_with_the_batch(key):
    """The GPU rows' FLOPs are a small CPU count scaled by the batch: that needs every product linear in it."""
    from ablations.bench_cases import build_module, make_batch
    from ablations.bench_measure import any_stepper, count_flops
    from ablations.gpu_measure import FLOP_BATCH, case, config_at, step_flops

    c = case(key)
    cfg = config_at(c, "tiny", 2 * FLOP_BATCH)
    torch.manual_seed(0)
    module = build_module(c, cfg).train()
    direct = count_flops(any_stepper(module, c.family, torch.device("cpu")), make_batch(c, cfg, "cpu", 0))
    assert direct > 0 and step_flops(c, "tiny", 2 * FLOP_BATCH) == direct
