"""`make gpu-check`: everything that needs a CUDA device, as one prepared pass of at most 8 minutes.

It is written for a GPU machine that has torch, Lightning, pandas, seaborn, scipy, matplotlib and
tqdm but no omegaconf, W&B or librosa and no package registry: `scripts/gpu_check.sh` installs the
carried wheels, and what needs librosa (the dataset, the reference features) or this machine's CPU
(the CPU timings the speed-ups are taken against) is made beforehand by `make gpu-check-prepare`
into data/gpu-check/.

Parts, in order; each runs in its own process with its own time limit inside one overall budget,
and prints one line: what it found, or `no CUDA device: skipped ...`, or why it did not finish.

- env       what the machine has (device, driver, torch, which optional packages import)
- features  the torchaudio feature path on CUDA against librosa's numbers from the reference file
- tests     the tests marked `gpu`
- grid      each module at batch 256 and 64, fp32 and bf16, then compiled at 256 (CUDA only)
- profile   where a decomposition and a composition step's time goes at batch 256: kernel-busy
            share of the wall time, kernels per step, the ops with the most kernel time
- bench     `d2m bench --devices cpu,cuda --preset paper` at the paper's batch (fp32)
- maxbatch  the largest batch that fits per module, doubling until an allocation fails
- train     `d2m run` of the tiny and the small preset on CUDA, on the carried dataset

Everything goes under one folder (summary.md and summary.json at its top); with `--pack DIR` the
summary, the log and a tarball of the folder (checkpoints left out) are copied to DIR, which stays
within the 8 files a device call brings back.

`GPU_CHECK_REHEARSE=1` runs every part on the CPU at the tiny preset instead (small batches, no
compile, the tiny run only): minutes of GPU time are not spent finding a typo.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ablations.gpu_report import PAIR, PAIR_BATCH, pack, summary_markdown

DATA = Path("data/gpu-check")
BUDGET_S = 450.0  # parts only; start-up, wheel install and packing fit in the rest of 8 minutes
GRID_MODULES = ["decomposition", "composition", "style-original", "style-improved"]
COMPILED_MODULES = ["decomposition", "composition"]
NO_CUDA = "no CUDA device: skipped"
ROOT = Path(__file__).resolve().parents[1]

# name: (seconds at most, what it needs CUDA for, or "" when it also runs without a device)
# In order of what the timing table needs most; the bench, last, gets what the others leave.
PARTS: dict[str, tuple[float, str]] = {
    "env": (30, ""),
    "features": (40, "the torchaudio feature check on CUDA"),
    "tests": (45, ""),
    "grid": (130, "the CUDA timings at batch 64 and 256 (fp32, bf16, compiled)"),
    "profile": (40, "the CUDA profile of the decomposition and composition steps"),
    "maxbatch": (80, "the largest-batch search"),
    "train": (100, "the CUDA training runs of the tiny and small presets"),
    "bench": (150, "d2m bench --devices cpu,cuda --preset paper (the CPU column is `make bench-cpu-vs-gpu`)"),
}
# The bench's cases beyond the grid's: the fast path against the plain recurrence, on CPU and CUDA.
BENCH_MODULES = "decomposition,composition,decomposition-plain-recurrence,composition-plain-recurrence"
# the small preset cut to a few minutes of CUDA work at most: every stage, a few hundred steps
SMALL_RUN = ["style.optim.max_epochs=5", "decomposition.optim.max_steps=300",
             "decomposition.optim.val_every_n_steps=150", "composition.optim.max_steps=200",
             "composition.optim.val_every_n_steps=100", "evaluation.classifier.optim.max_epochs=3",
             "evaluation.samples_per_clip=1"]


# -- helpers ------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Plan:
    """What the parts measure: the real check on CUDA, or its rehearsal on the CPU (GPU_CHECK_REHEARSE=1)."""

    device: str = "cuda"
    preset: str = "paper"
    batches: tuple[int, ...] = (256, 64)
    compiled: bool = True
    grid_steps: int = 10
    profile_steps: tuple[int, int] = (3, 3)  # (profiled steps, warm-up steps) of each profile
    peak_n: int | None = None  # matmul size for the peaks (None: the bench's default)
    bench: tuple[str, ...] = ("--preset", "paper", "--steps", "3", "--modules", BENCH_MODULES)
    start_batch: int = 64
    cap: int = 2**20
    train: tuple[tuple[str, str, tuple[str, ...]], ...] = (("tiny", "tiny", ()), ("small", "demo", tuple(SMALL_RUN)))
    # the parts' time limits and the budget are the GPU machine's (16 cores); a rehearsal on a shared
    # 2-core machine starts each process and runs the CPU work several times slower
    time_scale: float = 1.0


REHEARSAL = Plan(device="cpu", preset="tiny", batches=(8,), compiled=False, grid_steps=1, profile_steps=(1, 1),
                 peak_n=256,
                 bench=("--preset", "tiny", "--steps", "1", "--modules", "decomposition,composition"),
                 start_batch=8, cap=16, train=(("tiny", "tiny", ()),), time_scale=4.0)


def plan() -> Plan:
    return REHEARSAL if os.environ.get("GPU_CHECK_REHEARSE") else Plan()


def part_limit(name: str) -> float:
    """The seconds part `name` may run under this plan."""
    return PARTS[name][0] * plan().time_scale


def _cuda() -> bool:
    """Whether the CUDA parts can run: a CUDA device, or a rehearsal on the CPU."""
    import torch

    return torch.cuda.is_available() or plan().device == "cpu"


def _write_json(path: Path, obj: Any) -> None:
    from common.atomic import write_json

    write_json(path, obj)


def _python_env() -> dict[str, str]:
    """Children see the project and the carried wheels the way this process does."""
    paths = [str(ROOT), *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths)), "PYTHONUNBUFFERED": "1"}


def save_partial(work: Path, name: str, res: dict[str, Any]) -> None:
    """What a part has so far, where `check` finds it if the part is stopped at its time limit."""
    _write_json(work / "parts" / f"{name}.json", res)


def _tail(path: Path, n: int = 3) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return " | ".join(lines[-n:])[-400:]


# -- the parts (each runs as `python -m ablations.gpu_check part NAME`) --------------------------------------
def part_env(work: Path, data: Path) -> dict[str, Any]:
    import importlib.metadata as md
    import importlib.util
    import platform

    import torch

    from datamodules.audio_torch import torchaudio_available

    def version(name: str) -> str:
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            return "absent" if importlib.util.find_spec(name.replace("-", "_")) is None else "present"

    info: dict[str, Any] = {
        "python": platform.python_version(), "torch": torch.__version__, "cuda_build": torch.version.cuda,
        "cuda": torch.cuda.is_available(), "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(),
        "packages": {n: version(n) for n in ("pytorch-lightning", "omegaconf", "wandb", "librosa", "torchaudio",
                                             "submitit", "pandas", "seaborn", "scipy", "matplotlib", "tqdm")},
        "torchaudio_imports": torchaudio_available(),
        "data": {"dataset": (data / "synth" / "dataset.json").is_file(),
                 "reference_features": (data / "features_ref.npz").is_file(),
                 "cpu_reference": (data / "cpu_reference.json").is_file()},
    }
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info["device"] = {"name": p.name, "memory_gib": round(p.total_memory / 2**30, 1),
                          "multiprocessors": p.multi_processor_count, "capability": f"{p.major}.{p.minor}"}
        smi = shutil.which("nvidia-smi")
        if smi:
            out = subprocess.run([smi, "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                                  "--format=csv,noheader"], capture_output=True, text=True, check=False)
            info["nvidia_smi"] = out.stdout.strip()
    dev = info.get("device", {}).get("name", "no CUDA device")
    info["line"] = (f"{dev}; torch {info['torch']} (CUDA {info['cuda_build']}), python {info['python']}; "
                    + ", ".join(f"{k} {v}" for k, v in info["packages"].items()
                                if k in ("omegaconf", "wandb", "librosa", "torchaudio")))
    return info


def part_features(work: Path, data: Path) -> dict[str, Any]:
    from ablations.gpu_measure import feature_check
    from datamodules.audio import compute_features
    from datamodules.audio_torch import torchaudio_available

    if not _cuda():
        return {"skipped": f"{NO_CUDA} {PARTS['features'][1]}"}
    if not torchaudio_available():
        return {"skipped": "torchaudio does not import: skipped the torchaudio feature check"}
    from dataclasses import replace

    res = feature_check(data / "features_ref.npz",
                        lambda wave, sr, cfg: compute_features(wave, sr, replace(cfg, backend="torchaudio")))
    worst = max(w["max_abs_diff"] for w in res["waves"].values())
    res["line"] = (f"torchaudio on CUDA vs librosa: {len(res['waves'])} waves, max |diff| {worst:.2e} "
                   f"(tolerance {res['atol']:g}): {'ok' if res['ok'] else 'DIFFERENT'}")
    return res


def part_tests(work: Path, data: Path) -> dict[str, Any]:
    files = sorted(str(p) for p in (ROOT / "tests").glob("test_*.py") if "mark.gpu" in p.read_text())
    if not files:
        return {"line": "no test is marked gpu", "rc": 0}
    log = work / "logs" / "pytest-gpu.txt"
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", *files],
                         cwd=ROOT, capture_output=True, text=True, env=_python_env(), check=False)
    log.write_text(out.stdout + out.stderr)
    last = [ln for ln in out.stdout.splitlines() if ln.strip()][-1:] or ["(no output)"]
    ok = out.returncode in (0, 5)
    line = f"gpu tests ({len(files)} files): {last[0].strip('= ')}"
    import torch

    if not torch.cuda.is_available():
        line += f" ({NO_CUDA} the CUDA steps)"
    return {"line": line, "rc": out.returncode, "ok": ok, "files": [Path(f).name for f in files]}


def part_grid(work: Path, data: Path) -> dict[str, Any]:
    import pandas as pd
    import torch

    from ablations.bench_measure import matmul_peak
    from ablations.gpu_measure import grid_rows

    if not _cuda():
        return {"skipped": f"{NO_CUDA} {PARTS['grid'][1]}"}
    pl = plan()
    dev = torch.device(pl.device)
    peaks = {"fp32": matmul_peak(dev, torch.float32, n=pl.peak_n),
             "bf16": matmul_peak(dev, torch.bfloat16, n=pl.peak_n)}
    _write_json(work / "grid_peaks.json", peaks)
    rows: list[dict[str, Any]] = []

    def keep(row: dict[str, Any]) -> None:
        rows.append(row)
        pd.DataFrame(rows).to_csv(work / "grid.csv", index=False)

    deadline = time.monotonic() + part_limit("grid") - 15
    grid_rows(GRID_MODULES, list(pl.batches), [("fp32", False), ("bf16", False)], dev, steps=pl.grid_steps,
              preset=pl.preset, on_row=keep, deadline=deadline)
    if pl.compiled:
        grid_rows(COMPILED_MODULES, [pl.batches[0]], [("fp32", True), ("bf16", True)], dev, steps=pl.grid_steps,
                  preset=pl.preset, on_row=keep, deadline=deadline)
    done = sum("ms_per_step" in r for r in rows)
    return {"line": f"{done} of {len(rows)} timings on {dev} (batch {'/'.join(map(str, pl.batches))}, fp32/bf16"
                    + (f", compiled at {pl.batches[0]})" if pl.compiled else ", not compiled)"),
            "rows": len(rows), "peaks": peaks}


def part_profile(work: Path, data: Path) -> dict[str, Any]:
    import torch

    from ablations.gpu_measure import profile_step

    if not _cuda():
        return {"skipped": f"{NO_CUDA} {PARTS['profile'][1]}"}
    pl = plan()
    profiles = []
    for precision in ("fp32", "bf16"):
        for key in PAIR:
            profiles.append(profile_step(key, torch.device(pl.device), pl.batches[0], preset=pl.preset,
                                         precision=precision, steps=pl.profile_steps[0],
                                         warmup=pl.profile_steps[1]))
            save_partial(work, "profile", {"profiles": profiles, "line": f"{len(profiles)} profiles so far"})
    busy = [p["busy_share"] for p in profiles if p["busy_share"] is not None]
    line = f"{len(profiles)} profiles at batch {pl.batches[0]}" + (
        f"; kernels busy {min(busy):.0%}-{max(busy):.0%} of the wall time" if busy else "")
    return {"profiles": profiles, "line": line}


def part_bench(work: Path, data: Path) -> dict[str, Any]:
    if not _cuda():
        return {"skipped": f"{NO_CUDA} {PARTS['bench'][1]}"}
    out = work / "bench-fp32"
    log = work / "logs" / "bench.txt"
    with open(log, "w") as handle:
        proc = subprocess.run([sys.executable, "-m", "d2m", "bench", "--devices", "cpu,cuda", *plan().bench,
                               "--out", str(out)], cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT,
                              env=_python_env(), check=False)
    if proc.returncode != 0:
        return {"line": f"d2m bench failed (rc {proc.returncode}): {_tail(log)}", "rc": proc.returncode}
    return {"line": f"d2m bench {' '.join(plan().bench)}: {out / 'bench.md'}", "rc": 0}


def part_maxbatch(work: Path, data: Path, module: str) -> dict[str, Any]:
    import torch

    from ablations.gpu_measure import largest_batch, probe_step

    if not _cuda():
        return {"skipped": f"{NO_CUDA} {PARTS['maxbatch'][1]}"}
    seconds = part_limit("maxbatch") / len(GRID_MODULES) - 6  # each module runs in a process of its own
    pl = plan()
    total = torch.cuda.get_device_properties(0).total_memory / 2**20 if pl.device == "cuda" else None

    def result(rows: list[dict[str, Any]], reason: str) -> dict[str, Any]:
        fits = [r for r in rows if r["fits"]]
        best = fits[-1] if fits else None
        return {"module": module, "rows": rows, "reason": reason, "largest": best["batch"] if best else None,
                "peak_mem_mb": best["peak_mem_mb"] if best else None, "device_mem_mb": total,
                "line": f"{module}: largest batch {best['batch'] if best else 'none'} ({reason})"}

    seen: list[dict[str, Any]] = []

    def keep(row: dict[str, Any]) -> None:
        seen.append(row)
        save_partial(work, f"maxbatch-{module}", result(seen, "stopped at the part's time limit; a lower bound"))

    rows, reason = largest_batch(probe_step(module, torch.device(pl.device), preset=pl.preset), start=pl.start_batch,
                                 cap=pl.cap, seconds=seconds, on_row=keep)
    return result(rows, reason)


def part_train(work: Path, data: Path) -> dict[str, Any]:
    if not _cuda():
        return {"skipped": f"{NO_CUDA} {PARTS['train'][1]}"}
    root = data / "synth"
    if not (root / "dataset.json").is_file():
        return {"line": f"no dataset at {root}; run `make gpu-check-prepare` and carry {data}", "ok": False}
    runs = {}
    accelerator = plan().device
    for name, config, extra in plan().train:
        log = work / "logs" / f"train-{name}.txt"
        cmd = [sys.executable, "-m", "d2m", "run", config, f"data.root={root.resolve()}", "data.source=canonical",
               f"runs_dir={(work / 'runs').resolve()}", f"trainer.accelerator={accelerator}", "logging.wandb=false",
               *extra]
        t0 = time.perf_counter()
        with open(log, "w") as handle:
            proc = subprocess.run(cmd, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, env=_python_env(),
                                  check=False)
        entry: dict[str, Any] = {"rc": proc.returncode, "seconds": round(time.perf_counter() - t0, 1),
                                 "command": " ".join(cmd[1:])}
        if proc.returncode == 0:
            folder = Path(log.read_text().strip().splitlines()[-1])
            entry["run_dir"] = str(folder)
            for f in ("timings", "metrics"):
                if (folder / f"{f}.json").is_file():
                    entry[f] = json.loads((folder / f"{f}.json").read_text())
        else:
            entry["error"] = _tail(log)
        runs[name] = entry
        save_partial(work, "train", {"runs": runs, "ok": False, "line": f"d2m run on {accelerator}: "
                                     + ", ".join(f"{n} rc {r['rc']}" for n, r in runs.items())})
    ok = all(r["rc"] == 0 for r in runs.values())
    line = "; ".join(f"{n}: {'done' if r['rc'] == 0 else 'FAILED'} in {r['seconds']} s" for n, r in runs.items())
    return {"runs": runs, "ok": ok, "line": f"d2m run on {accelerator}: {line}"}


def run_part(name: str, work: Path, data: Path) -> dict[str, Any]:
    fn = {"env": part_env, "features": part_features, "tests": part_tests, "grid": part_grid,
          "profile": part_profile, "bench": part_bench, "train": part_train}[name]
    return fn(work, data)


# -- the orchestration ---------------------------------------------------------------------------------------
def _spawn(args: list[str], name: str, work: Path, data: Path, timeout: float) -> dict[str, Any]:
    """One part in a child process; its JSON answer, or what became of it (timed out, crashed)."""
    result_file = work / "parts" / f"{name}.json"
    result_file.unlink(missing_ok=True)
    log = work / "logs" / f"{name}.txt"
    cmd = [sys.executable, "-m", "ablations.gpu_check", "part", *args, "--work", str(work), "--data", str(data)]
    t0 = time.monotonic()
    with open(log, "w") as handle:
        try:
            proc = subprocess.run(cmd, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, env=_python_env(),
                                  timeout=timeout, check=False)
            rc: int | None = proc.returncode
        except subprocess.TimeoutExpired:
            rc = None
    seconds = round(time.monotonic() - t0, 1)
    if result_file.is_file():
        res = json.loads(result_file.read_text())
        if rc is None:
            res.update(ok=False, line=f"timed out after {timeout:.0f} s; so far: {res.get('line', '')}")
    elif rc is None:
        res = {"line": f"timed out after {timeout:.0f} s (kept what it wrote; log {log})", "ok": False}
    else:
        res = {"line": f"crashed (rc {rc}): {_tail(log)}", "ok": False}
    res["seconds"] = seconds
    return res


def check(work: Path, data: Path = DATA, budget: float = BUDGET_S, parts: list[str] | None = None) -> dict[str, Any]:
    """Run the parts within `budget` seconds; write summary.json and summary.md under `work`."""
    work = Path(work)
    for sub in ("parts", "logs"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    budget *= plan().time_scale
    t_end = time.monotonic() + budget
    results: dict[str, Any] = {}
    for name in parts or list(PARTS):
        limit = part_limit(name)
        left = t_end - time.monotonic()
        if left < 10:
            results[name] = {"line": f"not run: {left:.0f} s of the {budget:.0f} s budget left", "ok": False}
        elif PARTS[name][1] and not _cuda():  # said here: a child process would only say the same
            results[name] = {"skipped": f"{NO_CUDA} {PARTS[name][1]}", "seconds": 0}
        elif name == "env":  # cheap and safe: in this process, saving a start-up
            t0 = time.monotonic()
            results[name] = {**part_env(work, data), "seconds": round(time.monotonic() - t0, 1)}
        elif name == "maxbatch":
            results[name] = _maxbatch(work, data, min(limit, left))
        else:
            results[name] = _spawn([name], name, work, data, min(limit, left))
        res = results[name]
        print(f"gpu-check {name}: {res.get('skipped') or res.get('line', '')} [{res.get('seconds', 0)} s]",
              flush=True)
    summary = {"parts": results, "budget_s": budget, "plan": dataclasses.asdict(plan())}
    _write_json(work / "summary.json", summary)
    from common.atomic import write_text

    write_text(work / "summary.md", summary_markdown(work, data, results))
    return summary


def _maxbatch(work: Path, data: Path, limit: float) -> dict[str, Any]:
    per = {}
    t0 = time.monotonic()
    for module in GRID_MODULES:
        left = limit - (time.monotonic() - t0)
        if left < 5:
            per[module] = {"line": f"{module}: not run (time budget)", "largest": None}
            continue
        per[module] = _spawn(["maxbatch", "--module", module], f"maxbatch-{module}", work, data,
                             min(left, limit / len(GRID_MODULES) + 5))
    line = "; ".join(f"{m} {r.get('largest')}" for m, r in per.items())
    return {"modules": per, "line": f"largest batch: {line}", "seconds": round(time.monotonic() - t0, 1)}


# -- prepare (on a machine with librosa) ---------------------------------------------------------------------
def prepare(data: Path = DATA, cpu_ref: bool = False, clips_per_style: int = 4, seconds: float = 16.0) -> Path:
    """The dataset, the librosa reference features and (optionally) the CPU timings, under `data`."""
    import numpy as np

    from datamodules.audio import load_audio
    from datamodules.config import FeatureConfig, SynthConfig
    from datamodules.dataset import is_complete
    from datamodules.synth import build_synthetic

    data = Path(data)
    root = data / "synth"
    if not is_complete(root):
        build_synthetic(root, SynthConfig(clips_per_style=clips_per_style, seconds=seconds, seed=0), FeatureConfig())
    print(f"dataset: {root}")
    from ablations.gpu_measure import cpu_reference, write_reference

    cfg = FeatureConfig()
    waves = {}
    for wav in sorted((root / "audio").glob("*.wav"))[:: max(1, clips_per_style)][:2]:
        waves[wav.stem] = load_audio(wav, cfg.sample_rate)[: 8 * cfg.sample_rate]
    t = np.arange(5 * cfg.sample_rate) / cfg.sample_rate  # a chirp with clicks: content no dataset clip has
    chirp = 0.3 * np.sin(2 * np.pi * (100 + 400 * t) * t) + 0.5 * (np.mod(t, 0.5) < 0.005)
    waves["chirp"] = chirp.astype(np.float32)
    print(f"reference features: {write_reference(data / 'features_ref.npz', waves, cfg.sample_rate, cfg)}")
    if cpu_ref:
        ref = cpu_reference(GRID_MODULES, [64, PAIR_BATCH], steps=2)
        _write_json(data / "cpu_reference.json", ref)
        print(f"CPU reference: {data / 'cpu_reference.json'}")
    return data


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ablations.gpu_check", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("prepare", help="dataset, librosa reference features, CPU timings (needs librosa)")
    s.add_argument("--data", default=str(DATA))
    s.add_argument("--cpu-reference", action="store_true", help="also time each module on this CPU (minutes)")
    s = sub.add_parser("check", help="run every part; results under WORK")
    s.add_argument("work")
    s.add_argument("--data", default=str(DATA))
    s.add_argument("--budget", type=float, default=BUDGET_S, help="seconds for all parts together")
    s.add_argument("--parts", default=None, help="comma-separated subset of: " + ", ".join(PARTS))
    s.add_argument("--pack", default=None, help="copy the summary, log and a tarball here (e.g. the device's $OUT)")
    s.add_argument("--log", default=None, help="the log file to pack")
    s = sub.add_parser("part", help="one part, in this process (used by check)")
    s.add_argument("name", choices=[*PARTS])
    s.add_argument("--work", required=True)
    s.add_argument("--data", default=str(DATA))
    s.add_argument("--module", default=None)
    a = p.parse_args(argv)
    from common.errors import D2MError

    try:
        if a.command == "prepare":
            prepare(Path(a.data), cpu_ref=a.cpu_reference)
        elif a.command == "check":
            parts = [x.strip() for x in a.parts.split(",")] if a.parts else None
            unknown = [x for x in parts or [] if x not in PARTS]
            if unknown:
                raise D2MError(f"unknown gpu-check part '{unknown[0]}'; parts: {', '.join(PARTS)}")
            check(Path(a.work), Path(a.data), a.budget, parts)
            if a.pack:
                for f in pack(Path(a.work), Path(a.pack), Path(a.log) if a.log else None):
                    print(f"packed {f}")
        else:
            work = Path(a.work)
            res = part_maxbatch(work, Path(a.data), a.module) if a.name == "maxbatch" else run_part(a.name, work,
                                                                                                    Path(a.data))
            name = f"maxbatch-{a.module}" if a.name == "maxbatch" else a.name
            _write_json(work / "parts" / f"{name}.json", res)
    except D2MError as err:
        print(f"gpu-check: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
