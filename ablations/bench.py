"""`d2m bench`: how long one training step of each model takes, on CPU and on every CUDA device present.

Why a separate benchmark and not the timings of real runs: a real run mixes data loading,
validation and checkpoints into its wall time, and its modules differ in size by preset. The bench
times only the training step, at the preset's sizes and batch sizes, for every model variant the
study compares (both style-extractor architectures, the decomposition VAE, the composition GAN
with each alignment term off, and the straightforward formulation against the fast one), and puts
next to each time the work it did (FLOPs), the machine's limit (measured matmul peak), Lightning's
own share, peak memory and what the paper's epochs would cost.

Outputs under `out` (default results/bench/): bench.csv, bench.md, bench.png, fast_path.csv, and a
W&B run (project d2m-lab, group bench, job type bench; offline unless WANDB_MODE says otherwise).
"""

from __future__ import annotations

import gc
import os
import platform
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ablations.bench_cases import (
    FAST_PAIRS,
    BenchCase,
    batch_size,
    build_module,
    case_config,
    epoch_budget,
    make_batch,
    select_cases,
)
from ablations.bench_measure import (
    PeakMemory,
    Timed,
    any_stepper,
    compile_networks,
    count_flops,
    matmul_peak,
    plain_stepper,
    time_lightning,
    time_plain,
    trainer_stepper,
)
from ablations.bench_report import COLUMNS, NO_CUDA, fast_path_frame, log_wandb, write_outputs
from ablations.progress import CaseProgress
from common.errors import D2MError

__all__ = ["measure_case", "resolve_devices", "run_bench"]

PRECISIONS = ("fp32", "bf16")
PRESETS = ("paper", "small", "tiny")


def resolve_devices(names: list[str]) -> tuple[list[torch.device], str]:
    """CPU (always) plus the CUDA devices asked for and present; and what the CUDA column should say.

    `cuda` (or `gpu`) means every CUDA device present; `cuda:K` one of them. Asking for CUDA where
    there is none is not an error: the CPU is still measured and the table says no device is present.
    """
    devices = [torch.device("cpu")]
    asked_cuda = False
    missing: list[str] = []
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    for raw in names:
        name = raw.strip().lower()
        if name in ("", "cpu"):
            continue
        if name in ("cuda", "gpu"):
            asked_cuda = True
            wanted = list(range(count))
        elif name.startswith("cuda:") and name[5:].isdigit():
            asked_cuda = True
            k = int(name[5:])
            wanted = [k] if k < count else []
            if k >= count:
                missing.append(name)
        else:
            raise D2MError(f"unknown bench device '{raw}'; use cpu, cuda or cuda:K")
        for k in wanted:
            dev = torch.device("cuda", k)
            if dev not in devices:
                devices.append(dev)
    cudas = [d for d in devices if d.type == "cuda"]
    if not asked_cuda:
        status = "not requested"
    elif not cudas:
        status = NO_CUDA if count == 0 else f"{', '.join(missing)} not present ({count} CUDA devices)"
    else:
        status = "measured on " + ", ".join(f"{d} ({torch.cuda.get_device_name(d)})" for d in cudas)
    return devices, status


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return name or platform.processor() or platform.machine()


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def _warmup(device: torch.device, compile: bool) -> int:
    """Steps dropped before timing: one on CPU (first allocations), more on CUDA (cuDNN/cuBLAS set-up),
    and more again with torch.compile (compilation happens in the first steps)."""
    return (3 if device.type == "cuda" else 1) + (2 if compile else 0)


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def measure_case(case: BenchCase, cfg, device: torch.device, steps: int, warmup: int, precision: str = "fp32",
                 compile: bool = False, seed: int = 0) -> dict[str, Any]:
    """Plain loop, then Lightning, on one device: per-step times, losses and the Lightning run's peak memory.

    Each loop gets a fresh module built from the same seed, so both start from the same weights. On
    the CPU (uncompiled) one more plain step after the timed ones is run under the FLOP counter;
    FLOPs of a step do not depend on the device, so CUDA rows reuse that count.
    """
    batch = make_batch(case, cfg, device, seed)
    torch.manual_seed(seed)
    module = build_module(case, cfg)
    if compile:
        compile_networks(module, case.family)
    module.to(device).train()
    step = plain_stepper(module, case.family, device, precision)
    if step is None:  # manual optimisation: the step runs in a Trainer only; FLOPs of one Trainer step
        plain = Timed([], 0)
        step = trainer_stepper(module, device, precision, seed)
    else:
        plain = time_plain(step, batch, device, steps, warmup, seed)
    result: dict[str, Any] = {"plain": plain}
    if device.type == "cpu" and not compile:
        result["flops"] = count_flops(step, batch)
    del module, step
    _free(device)
    with PeakMemory(device) as mem:
        torch.manual_seed(seed)
        module = build_module(case, cfg)
        if compile:
            compile_networks(module, case.family)
        lit = time_lightning(module, batch, device, steps, warmup, precision, seed)
    del module
    _free(device)
    result.update(lightning=lit, peak_bytes=mem.peak_bytes, memory_method=mem.method)
    return result


def _flops_on_cpu(case: BenchCase, cfg, seed: int) -> int:
    torch.manual_seed(seed)
    module = build_module(case, cfg).train()
    cpu = torch.device("cpu")
    step = any_stepper(module, case.family, cpu, "fp32", seed)
    n = count_flops(step, make_batch(case, cfg, "cpu", seed))
    del module
    gc.collect()
    return n


def _nan() -> float:
    return float("nan")


def run_bench(devices: list[str] | None = None, preset: str = "paper", steps: int = 20,
              out: Path | str = Path("results/bench"), precision: str = "fp32", compile: bool = False,
              modules: list[str] | None = None, seed: int = 0, wandb: bool = True) -> Path:
    """Measure every selected case on CPU and each CUDA device present; write the tables; return `out`."""
    if preset not in PRESETS:
        raise D2MError(f"unknown bench preset '{preset}'; choices: {', '.join(PRESETS)}")
    if precision not in PRECISIONS:
        raise D2MError(f"unknown bench precision '{precision}'; choices: {', '.join(PRECISIONS)}")
    if steps < 1:
        raise D2MError(f"--steps must be at least 1, got {steps}")
    out = Path(out)
    cases = select_cases(modules)
    targets, cuda_status = resolve_devices(devices or ["cpu", "cuda"])
    load_start = _load()
    small_peak = {"n": 512, "reps": 2} if preset == "tiny" else {}
    peaks: dict[tuple[str, str], float] = {}
    for dev in targets:
        peaks[(str(dev), "fp32")] = matmul_peak(dev, torch.float32, **small_peak)
        if precision == "bf16" and dev.type == "cuda":
            peaks[(str(dev), "bf16")] = matmul_peak(dev, torch.bfloat16, **small_peak)

    rows: list[dict[str, Any]] = []
    flops: dict[str, int] = {}
    memory_methods: set[str] = set()
    data_text = ""
    progress = CaseProgress(len(cases) * len(targets))
    for case in cases:
        cfg = case_config(case, preset)
        budget = epoch_budget(case, cfg)
        if not data_text:
            s = cfg.data.synth
            data_text = (f"{s.clips_per_style} clips per style of {s.seconds:g} s at {cfg.data.features.fps} fps, "
                         f"unit stride {cfg.data.unit_stride}, style-window stride {cfg.data.window_stride}")
        cpu_ms = _nan()
        for dev in targets:
            warm = _warmup(dev, compile)
            prec = "bf16-mixed" if precision == "bf16" and dev.type == "cuda" else "fp32"
            row: dict[str, Any] = {
                "module": case.key, "label": case.label, "family": case.family, "device": str(dev),
                "device_name": _device_name(dev), "precision": prec, "compiled": bool(compile),
                "threads": torch.get_num_threads(), "batch_size": batch_size(case, cfg), "steps": steps,
                "warmup": warm, "steps_per_epoch": budget.steps_per_epoch, "epochs": budget.epochs,
                "total_steps": budget.total_steps, "cuda": "measured" if dev.type == "cuda" else cuda_status,
                "note": "",
            }
            progress.start(f"{case.label} on {dev}")
            try:
                res = measure_case(case, cfg, dev, steps, warm, precision, compile, seed)
            except Exception as err:  # one failing case (e.g. out of memory) must not cost the table
                progress.finish()
                row["note"] = f"failed: {type(err).__name__}: {str(err).splitlines()[0][:200]}"
                _free(dev)
                rows.append(row)
                print(f"d2m bench: {case.label} on {dev}: {row['note']}", file=sys.stderr)
                continue
            progress.finish()
            if "flops" in res:
                flops[case.key] = res["flops"]
            ms, plain_ms = res["lightning"].median_ms, res["plain"].median_ms
            memory_methods.add(res["memory_method"])
            if dev.type == "cpu":
                cpu_ms = ms
            row.update(ms_per_step=ms, plain_ms_per_step=plain_ms,
                       lightning_overhead_pct=100.0 * (ms - plain_ms) / plain_ms if plain_ms > 0 else _nan(),
                       samples_per_s=row["batch_size"] / (ms / 1000.0) if ms > 0 else _nan(),
                       peak_mem_mb=res["peak_bytes"] / 2**20,
                       projected_hours=ms * budget.total_steps / 3.6e6,
                       gpu_speedup=cpu_ms / ms if dev.type == "cuda" and ms > 0 else _nan())
            rows.append(row)
            print(f"d2m bench: {case.label} on {dev}: {ms:.1f} ms/step (plain loop {plain_ms:.1f})",
                  file=sys.stderr)
        if case.key not in flops and any("ms_per_step" in r for r in rows if r["module"] == case.key):
            flops[case.key] = _flops_on_cpu(case, cfg, seed)

    for row in rows:
        n = flops.get(row["module"])
        ms = row.get("ms_per_step", _nan())
        row["gflop_per_step"] = n / 1e9 if n is not None else _nan()
        row["achieved_gflops"] = row["gflop_per_step"] / (ms / 1000.0) if n is not None and ms > 0 else _nan()
        key = "bf16" if row["precision"].startswith("bf16") else "fp32"
        peak = peaks.get((row["device"], key), _nan())
        row["matmul_peak_gflops"] = peak / 1e9
        row["pct_of_peak"] = 100.0 * row["achieved_gflops"] / row["matmul_peak_gflops"]
    table = pd.DataFrame(rows)
    for col in COLUMNS:
        if col not in table.columns:
            table[col] = _nan()
    fast = fast_path_frame(table, FAST_PAIRS)

    info: dict[str, Any] = {
        "preset": preset, "steps": steps, "precision": precision, "compile": bool(compile),
        "threads": torch.get_num_threads(), "cpu_count": os.cpu_count() or 0, "torch": torch.__version__,
        "python": platform.python_version(), "load_start": load_start, "load_end": _load(),
        "warmup_text": " / ".join(sorted({f"{_warmup(d, compile)} ({d.type})" for d in targets})),
        "devices_text": "; ".join(f"{d} = {_device_name(d)}" for d in targets) + f"; CUDA: {cuda_status}",
        "cuda": cuda_status, "matmul_peaks": peaks, "data_text": data_text,
        "memory_text": (" and ".join(sorted(memory_methods)) or "n/a")
        + " of the Lightning run, module construction included",
    }
    write_outputs(out, table, fast, info)
    if wandb:
        log_wandb(table, fast, info, out)
    return out

