"""The measurements of the GPU check that `d2m bench` does not make: any batch, largest batch, features.

Every number comes from the bench's own instruments (`ablations.bench_measure`, `measure_case`), with
the batch size set through the config as a run would set it, so a row here and a row of
`d2m bench` differ only in the batch and precision they were asked for.

- `grid_rows`: one module at one batch, precision and compile setting, on one device (plain loop and
  Lightning, peak memory, FLOPs of a step, the projected paper-budget time at that batch).
- `largest_batch`: doubling the batch until a step no longer fits (peak from
  `torch.cuda.max_memory_allocated`), or a step gets too slow to keep doubling within the budget.
- `cpu_reference`: plain-loop step times on this machine's CPU, carried to the GPU machine so that
  its speed-ups are against this CPU (no GPU machine has to spend minutes re-measuring it).
- `feature_check`: a feature path held to librosa's numbers stored in a reference file.
- `profile_step`: where a step's time goes (device-busy share, kernels per step, heaviest ops).
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ablations.bench_cases import CASES, BenchCase, build_module, case_config, epoch_budget, make_batch
from ablations.bench_measure import any_stepper, count_flops, plain_stepper, synchronize, time_lightning, time_plain
from common.errors import D2MError

__all__ = ["OOM_MARKERS", "case", "config_at", "cpu_reference", "feature_check", "grid_rows", "is_oom",
           "largest_batch", "probe_step", "profile_step", "step_flops"]

# What a failed allocation says besides torch.OutOfMemoryError: cuBLAS and cuDNN report their own.
OOM_MARKERS = ("out of memory", "CUBLAS_STATUS_ALLOC_FAILED", "CUDNN_STATUS_ALLOC_FAILED")
FEATURE_ATOL = 1e-3  # the tolerance the backends are held to in tests/test_data_audio.py


def case(key: str) -> BenchCase:
    for c in CASES:
        if c.key == key:
            return c
    raise D2MError(f"unknown bench module '{key}'; known: {', '.join(c.key for c in CASES)}")


def config_at(c: BenchCase, preset: str, batch: int):
    """The case's config with the family's training batch set to `batch` (as `family.optim.batch_size=B`)."""
    cfg = case_config(c, preset)
    cfg[c.family].optim.batch_size = int(batch)
    return cfg


def _free() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def grid_rows(keys: list[str], batches: list[int], settings: list[tuple[str, bool]], device: torch.device,
              steps: int, preset: str = "paper", on_row: Callable[[dict[str, Any]], None] | None = None,
              deadline: float | None = None) -> list[dict[str, Any]]:
    """One row per (module, batch, precision, compiled), measured with the bench's `measure_case`.

    Rows are handed to `on_row` as they come, so a part stopped at its time limit keeps what it
    measured; past `deadline` (a time.monotonic() value) the remaining rows are recorded as not run.
    """
    from ablations.bench import _warmup, measure_case

    rows: list[dict[str, Any]] = []
    flops: dict[tuple[str, int], int] = {}
    for precision, compiled in settings:
        for batch in batches:
            for key in keys:
                c = case(key)
                cfg = config_at(c, preset, batch)
                budget = epoch_budget(c, cfg)
                row: dict[str, Any] = {"module": key, "label": c.label, "batch": batch, "precision": precision,
                                       "compiled": compiled, "device": str(device), "total_steps": budget.total_steps,
                                       "note": ""}
                if deadline is not None and time.monotonic() > deadline:
                    row["note"] = "not run: time budget"
                else:
                    try:
                        res = measure_case(c, cfg, device, steps, _warmup(device, compiled), precision, compiled)
                        if (key, batch) not in flops:
                            flops[(key, batch)] = step_flops(c, preset, batch)
                        ms = res["lightning"].median_ms
                        row.update(ms_per_step=ms, plain_ms_per_step=res["plain"].median_ms,
                                   peak_mem_mb=res["peak_bytes"] / 2**20, samples_per_s=batch / (ms / 1000.0),
                                   projected_hours=ms * budget.total_steps / 3.6e6,
                                   first_loss=res["plain"].losses[0] if res["plain"].losses else None)
                    except Exception as err:  # out of memory, a compile failure: the row says so, the grid goes on
                        row["note"] = f"failed: {type(err).__name__}: {str(err).splitlines()[0][:200]}"
                        _free()
                n = flops.get((key, batch))
                row["gflop_per_step"] = n / 1e9 if n is not None else float("nan")
                ms = row.get("ms_per_step", float("nan"))
                row["achieved_tflops"] = row["gflop_per_step"] / ms if n is not None and ms > 0 else float("nan")
                rows.append(row)
                if on_row is not None:
                    on_row(row)
    return rows


FLOP_BATCH = 8


def step_flops(c: BenchCase, preset: str, batch: int) -> int:
    """Matmul FLOPs of one training step at `batch`: counted on the CPU at FLOP_BATCH and scaled.

    On the CPU the GRUs run as matrix products that FlopCounterMode sees; on CUDA they run inside
    cuDNN, which it does not count. Every product in these networks is linear in the batch (a
    test checks it), so counting a small batch and scaling is exact and takes milliseconds.
    """
    cfg = config_at(c, preset, FLOP_BATCH)
    cpu = torch.device("cpu")
    torch.manual_seed(0)
    module = build_module(c, cfg).train()
    n = count_flops(any_stepper(module, c.family, cpu), make_batch(c, cfg, cpu, 0))
    del module
    gc.collect()
    return n * batch // FLOP_BATCH


def is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or any(m in str(err) for m in OOM_MARKERS)


def probe_step(key: str, device: torch.device, preset: str = "paper", precision: str = "fp32",
               ) -> Callable[[int], tuple[float, float]]:
    """A function batch -> (ms of one timed training step after one warm-up step, peak bytes of the two)."""

    def probe(batch: int) -> tuple[float, float]:
        c = case(key)
        cfg = config_at(c, preset, batch)
        module = step = data = None
        try:
            _free()
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
                base = torch.cuda.memory_allocated(device)
            torch.manual_seed(0)
            module = build_module(c, cfg).to(device).train()
            data = make_batch(c, cfg, device, 0)
            step = plain_stepper(module, c.family, device, precision)
            timed = (time_plain(step, data, device, steps=1, warmup=1) if step is not None  # GAN: Trainer only
                     else time_lightning(module, data, device, steps=1, warmup=1, precision=precision))
            synchronize(device)
            peak = float(torch.cuda.max_memory_allocated(device) - base) if device.type == "cuda" else float("nan")
            return timed.median_ms, peak
        finally:
            del module, step, data
            _free()

    return probe


def largest_batch(probe: Callable[[int], tuple[float, float]], start: int = 64, cap: int = 2**20,
                  max_step_ms: float = 4000.0, seconds: float = 60.0,
                  on_row: Callable[[dict[str, Any]], None] | None = None) -> tuple[list[dict[str, Any]], str]:
    """Double the batch from `start` until a step fails to allocate, gets slower than `max_step_ms`, the
    `seconds` run out, or `cap` is reached; returns every probed batch and why the doubling stopped.

    The largest batch that fits is the last row with `fits` true; unless the reason is an allocation
    failure it is a lower bound, and the reason says so. Each fitting row is handed to `on_row` as it
    comes.
    """
    rows: list[dict[str, Any]] = []
    t0 = time.monotonic()
    batch = start
    while True:
        try:
            ms, peak = probe(batch)
        except Exception as err:
            if is_oom(err):
                rows.append({"batch": batch, "fits": False, "note": "out of memory"})
                return rows, f"out of memory at batch {batch}"
            note = f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:160]}"
            rows.append({"batch": batch, "fits": False, "note": note})
            return rows, f"failed at batch {batch} ({type(err).__name__}); a lower bound"
        rows.append({"batch": batch, "fits": True, "ms_per_step": ms, "peak_mem_mb": peak / 2**20,
                     "samples_per_s": batch / (ms / 1000.0) if ms > 0 else float("nan")})
        if on_row is not None:
            on_row(rows[-1])
        if batch * 2 > cap:
            return rows, f"reached the cap {cap}; a lower bound"
        if ms > max_step_ms:
            return rows, f"a step took {ms:.0f} ms at batch {batch}; stopped doubling (a lower bound)"
        if time.monotonic() - t0 + 3 * ms / 1000.0 > seconds:  # the next probe runs ~2 steps of twice the size
            return rows, f"time budget of {seconds:.0f} s; a lower bound"
        batch *= 2


def cpu_reference(keys: list[str], batches: list[int], steps: int = 2, threads: int | None = None,
                  preset: str = "paper") -> dict[str, Any]:
    """Plain-loop ms per step on this machine's CPU, per module and batch (one warm-up step dropped).

    Besides the wall time it records the process's CPU time per step: on a machine shared with other
    work the wall time is an upper bound, while the CPU time of a single-threaded step is about what
    the step takes on an idle core. Speed-ups are quoted against both.
    """
    import os
    import platform

    if threads:
        torch.set_num_threads(threads)
    cpu = torch.device("cpu")
    rows = []
    for batch in batches:
        for key in keys:
            c = case(key)
            cfg = config_at(c, preset, batch)
            torch.manual_seed(0)
            module = build_module(c, cfg).train()
            step, data = plain_stepper(module, c.family, cpu), make_batch(c, cfg, cpu, 0)
            if step is not None:
                time_plain(step, data, cpu, steps=1, warmup=0)  # first allocations, not timed
                t0 = time.process_time()
                timed = time_plain(step, data, cpu, steps, 0)
                cpu_ms = 1000.0 * (time.process_time() - t0) / steps
            else:  # manual optimisation (the GAN): steps inside one Trainer run, after one warm-up step
                t0, w0 = time.process_time(), time.perf_counter()
                timed = time_lightning(module, data, cpu, steps, warmup=1)
                busy = (time.process_time() - t0) / max(time.perf_counter() - w0, 1e-9)
                cpu_ms = timed.median_ms * busy  # the step's wall time times the run's CPU share
            rows.append({"module": key, "batch": batch, "plain_ms_per_step": timed.median_ms,
                         "cpu_ms_per_step": cpu_ms, "steps": steps, "step_ms": timed.step_ms,
                         "load": os.getloadavg()[0]})
            print(f"cpu reference: {key} batch {batch}: {timed.median_ms:.0f} ms wall, {cpu_ms:.0f} ms of CPU time",
                  flush=True)
            del module
            gc.collect()
    return {"rows": rows, "threads": torch.get_num_threads(), "cpu_count": os.cpu_count() or 0,
            "torch": torch.__version__, "machine": platform.machine(), "preset": preset,
            "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def write_reference(path: Path, waves: dict[str, np.ndarray], sample_rate: int, feature_cfg) -> Path:
    """librosa's features of each wave, with the waves and the feature config, as one .npz file."""
    from dataclasses import asdict

    from common.atomic import write_with
    from datamodules.audio import compute_features

    if feature_cfg.backend != "librosa":
        raise D2MError("the reference features must be computed with features.backend=librosa")
    arrays: dict[str, Any] = {"config": np.array(json.dumps(asdict(feature_cfg))), "sample_rate": np.array(sample_rate)}
    for name, wave in waves.items():
        arrays[f"wave_{name}"] = np.asarray(wave, dtype=np.float32)
        arrays[f"features_{name}"] = compute_features(wave, sample_rate, feature_cfg)

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)

    return write_with(Path(path), save)


def feature_check(path: Path, compute: Callable[[np.ndarray, int, Any], np.ndarray],
                  atol: float = FEATURE_ATOL) -> dict[str, Any]:
    """Features from `compute(wave, sr, cfg)` against the reference file's librosa features, per wave."""
    from datamodules.config import FeatureConfig

    if not Path(path).is_file():
        raise D2MError(f"no reference features at {path}; run `make gpu-check-prepare` where librosa is installed")
    with np.load(path) as ref:
        cfg = FeatureConfig(**json.loads(str(ref["config"])))
        sr = int(ref["sample_rate"])
        names = sorted(k[len("wave_"):] for k in ref.files if k.startswith("wave_"))
        waves = {n: ref[f"wave_{n}"] for n in names}
        expected = {n: ref[f"features_{n}"] for n in names}
    result: dict[str, Any] = {"atol": atol, "waves": {}}
    for n in names:
        t0 = time.perf_counter()
        ours = np.asarray(compute(waves[n], sr, cfg))
        seconds = time.perf_counter() - t0
        same_shape = ours.shape == expected[n].shape
        diff = float(np.max(np.abs(ours - expected[n]))) if same_shape else float("inf")
        result["waves"][n] = {"shape": list(ours.shape), "expected_shape": list(expected[n].shape),
                              "max_abs_diff": diff, "seconds": seconds, "ok": bool(same_shape and diff <= atol)}
    result["ok"] = bool(names) and all(w["ok"] for w in result["waves"].values())
    return result


def profile_step(key: str, device: torch.device, batch: int, preset: str = "paper", precision: str = "fp32",
                 steps: int = 3, warmup: int = 3) -> dict[str, Any]:
    """Where a plain training step's time goes: device-busy share, kernels per step, the heaviest ops.

    With `torch.profiler` over `steps` steps after `warmup`: on CUDA, the kernel time per step against
    the wall time per step (a low share means the GPU waits on launches: latency-bound), the number
    of kernels launched per step, and the ops with the most kernel time. On the CPU, the ops with the
    most CPU time. The profiler's own overhead makes the wall time a little longer than unprofiled.
    """
    from torch.profiler import ProfilerActivity, profile

    c = case(key)
    cfg = config_at(c, preset, batch)
    torch.manual_seed(0)
    module = build_module(c, cfg).to(device).train()
    data = make_batch(c, cfg, device, 0)
    step = plain_stepper(module, c.family, device, precision)
    if step is not None:
        for i in range(warmup):
            step(data, i)
    synchronize(device)
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        if step is not None:
            t0 = time.perf_counter()
            for i in range(steps):
                step(data, warmup + i)
            synchronize(device)
            wall_ms = 1000.0 * (time.perf_counter() - t0) / steps
        else:  # manual optimisation (the GAN): its steps run inside a Trainer, warm-up steps profiled too
            wall_ms = time_lightning(module, data, device, steps, warmup, precision).median_ms
            steps += warmup  # the per-step counts below then cover every profiled step

    def on_device(e) -> bool:
        return str(getattr(e, "device_type", "")).endswith("CUDA")

    def own_us(e) -> float:  # an op's own kernel time on CUDA, its own CPU time on the CPU
        if cuda:
            return float(getattr(e, "self_device_time_total", getattr(e, "self_cuda_time_total", 0.0)))
        return float(e.self_cpu_time_total)

    averages = sorted((e for e in prof.key_averages() if not on_device(e)), key=own_us, reverse=True)
    kernels = None
    if cuda:  # the kernels themselves: their count, and their summed duration as the busy time
        device_events = [e for e in prof.events() if on_device(e)]
        kernels = len(device_events) / steps
        busy_ms = sum(e.time_range.elapsed_us() for e in device_events) / 1000.0 / steps
    else:
        busy_ms = sum(own_us(e) for e in averages) / 1000.0 / steps
    top = [{"op": e.key, "ms_per_step": own_us(e) / 1000.0 / steps,
            "share": own_us(e) / 1000.0 / steps / busy_ms if busy_ms > 0 else float("nan")} for e in averages[:6]]
    del module, step, data
    _free()
    return {"module": key, "batch": batch, "precision": precision, "device": str(device), "wall_ms": wall_ms,
            "busy_ms": busy_ms, "busy_share": busy_ms / wall_ms if cuda and wall_ms > 0 else None,
            "kernels_per_step": kernels, "top": top}
