"""What the GPU check reports: summary.md from the parts' answers, and the few files a remote run brings back.

The verdict on the study's target sits here too: the decomposition + composition iteration at batch
256 on CUDA against this project's CPU, from the CPU timings that `make gpu-check-prepare CPU_REF=1`
measured and carried.
"""

from __future__ import annotations

import json
import math
import shutil
import tarfile
from pathlib import Path
from typing import Any

from common.numbers import format_number as fmt

__all__ = ["PAIR", "PAIR_BATCH", "TARGET_SPEEDUP", "pack", "pair_speedup", "summary_markdown"]

PAIR = ("decomposition", "composition")  # the study's "decomposition + composition iteration"
PAIR_BATCH = 256
TARGET_SPEEDUP = 50.0




def pair_speedup(grid: list[dict[str, Any]], cpu_rows: list[dict[str, Any]], batch: int = PAIR_BATCH,
                 precision: str = "fp32") -> dict[str, Any] | None:
    """The decomposition + composition plain-loop iteration at `batch` on CUDA against the carried CPU rows.

    The verdict uses the CPU's CPU-time figure where the rows have one (about an idle core's time, the
    smaller and so the stricter of the two), else its wall time.
    """
    def ms(rows: list[dict[str, Any]], key: str, field: str = "plain_ms_per_step", **where: Any) -> float | None:
        for r in rows:
            if r.get("module") == key and all(r.get(k) == v for k, v in where.items()):
                v = r.get(field)
                return float(v) if v is not None and math.isfinite(float(v)) else None
        return None

    gpu = [ms(grid, k, batch=batch, precision=precision, compiled=False) for k in PAIR]
    cpu = [ms(cpu_rows, k, batch=batch) for k in PAIR]
    if None in gpu or None in cpu:
        return None
    cpu_time = [ms(cpu_rows, k, "cpu_ms_per_step", batch=batch) for k in PAIR]
    out = {"batch": batch, "precision": precision, "cpu_ms": sum(cpu), "gpu_ms": sum(gpu),
           "speedup": sum(cpu) / sum(gpu), "target": TARGET_SPEEDUP}
    if None not in cpu_time:
        out.update(cpu_time_ms=sum(cpu_time), speedup_cpu_time=sum(cpu_time) / sum(gpu))
    out["met"] = out.get("speedup_cpu_time", out["speedup"]) >= TARGET_SPEEDUP
    return out


def summary_markdown(work: Path, data: Path, results: dict[str, Any]) -> str:
    lines = ["# GPU check", "", "| part | result | seconds |", "|---|---|---|"]
    for name, res in results.items():
        text = str(res.get("skipped") or res.get("line", "")).replace("|", "/")
        lines.append(f"| {name} | {text} | {res.get('seconds', '-')} |")
    lines.append("")
    grid_csv = work / "grid.csv"
    cpu_file = data / "cpu_reference.json"
    cpu = json.loads(cpu_file.read_text()) if cpu_file.is_file() else None
    if grid_csv.is_file():
        import pandas as pd

        grid = pd.read_csv(grid_csv).to_dict("records")
        peaks = json.loads((work / "grid_peaks.json").read_text()) if (work / "grid_peaks.json").is_file() else {}
        lines += _grid_table(grid, cpu["rows"] if cpu else [], peaks)
        if cpu:
            pair = pair_speedup(grid, cpu["rows"])
            if pair:
                cpu_time = (f", {pair['cpu_time_ms']:.0f} ms of CPU time ({pair['speedup_cpu_time']:.1f}x)"
                            if "cpu_time_ms" in pair else "")
                lines += [f"Decomposition + composition iteration at batch {pair['batch']} (plain loop, fp32): "
                          f"{pair['gpu_ms']:.1f} ms on CUDA; on the reference CPU ({cpu['threads']} threads, "
                          f"{cpu['cpu_count']} cores) {pair['cpu_ms']:.0f} ms wall ({pair['speedup']:.1f}x)"
                          f"{cpu_time}; target {pair['target']:.0f}x: {'met' if pair['met'] else 'not met'}.", ""]
        else:
            lines += [f"No CPU reference ({cpu_file}): speed-ups against the CPU need `make gpu-check-prepare "
                      "CPU_REF=1` on the CPU machine.", ""]
    profiles = results.get("profile", {}).get("profiles")
    if profiles:
        lines += ["| module | batch | precision | wall ms/step | kernel ms/step | kernels busy | kernels/step "
                  "| heaviest ops (share of kernel time) |", "|---|---|---|---|---|---|---|---|"]
        for pr in profiles:
            top = ", ".join(f"{t['op'][:40]} {t['share']:.0%}" for t in pr["top"][:3])
            lines.append(f"| {pr['module']} | {pr['batch']} | {pr['precision']} | {fmt(pr['wall_ms'])} | "
                         f"{fmt(pr['busy_ms'])} | {fmt(pr['busy_share'])} | {fmt(pr['kernels_per_step'])} | "
                         f"{top.replace('|', '/')} |")
        lines.append("")
    mb = results.get("maxbatch", {}).get("modules")
    if mb:
        lines += ["| module | largest batch | peak MiB | why the doubling stopped |", "|---|---|---|---|"]
        for m, r in mb.items():
            lines.append(f"| {m} | {fmt(r.get('largest'))} | {fmt(r.get('peak_mem_mb'), 5)} | "
                         f"{r.get('reason', r.get('line', ''))} |")
        lines.append("")
    bench_md = work / "bench-fp32" / "bench.md"
    if bench_md.is_file():
        lines += ["## d2m bench (fp32, CPU and CUDA)", "", bench_md.read_text(), ""]
    return "\n".join(lines) + "\n"


def _grid_table(grid: list[dict[str, Any]], cpu_rows: list[dict[str, Any]], peaks: dict[str, float]) -> list[str]:
    def plain_ms(module: str, batch: int, precision: str, compiled: bool) -> float | None:
        for r in grid:
            if (r["module"], int(r["batch"]), r["precision"], bool(r["compiled"])) == (module, batch, precision,
                                                                                      compiled):
                v = r.get("plain_ms_per_step")
                return float(v) if v is not None and math.isfinite(float(v)) else None
        return None

    cpu = {(r["module"], int(r["batch"])): r.get("cpu_ms_per_step", r["plain_ms_per_step"]) for r in cpu_rows}
    out = ["| module | batch | precision | compiled | ms/step (Lightning) | plain ms | CPU ms (CPU time) "
           "| speed-up vs CPU | vs fp32 | peak MiB | TFLOP/s | % of bf16 peak | paper budget (h) | note |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    bf16_peak = peaks.get("bf16")
    for r in grid:
        batch, compiled = int(r["batch"]), bool(r["compiled"])
        mine = plain_ms(r["module"], batch, r["precision"], compiled)
        base = plain_ms(r["module"], batch, "fp32", False)
        ref = cpu.get((r["module"], batch))
        tflops = r.get("achieved_tflops")
        pct = 100.0 * float(tflops) * 1e12 / bf16_peak if bf16_peak and tflops is not None else None
        out.append("| " + " | ".join([
            r["module"], str(batch), r["precision"], "yes" if compiled else "no", fmt(r.get("ms_per_step")),
            fmt(mine), fmt(ref), fmt(ref / mine if ref and mine else None),
            fmt(base / mine if base and mine else None), fmt(r.get("peak_mem_mb"), 5), fmt(tflops),
            fmt(pct), fmt(r.get("projected_hours")), _note(r.get("note")),
        ]) + " |")
    return out + [""]


def _note(x: Any) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else str(x).replace("|", "/")


def pack(work: Path, dest: Path, log: Path | None = None) -> list[Path]:
    """summary.md, summary.json, the log and work as a tarball (no checkpoints) into `dest`: 4 files."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for f in ("summary.md", "summary.json"):
        if (work / f).is_file():
            written.append(Path(shutil.copy2(work / f, dest / f)))
    if log is not None and log.is_file():
        written.append(Path(shutil.copy2(log, dest / "gpu-check.log")))

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        name = info.name
        if name.endswith(".ckpt") or "/wandb/" in f"/{name}/" or name.endswith(".mp4"):
            return None
        return info

    tarball = dest / "gpu-check.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(work, arcname="gpu-check", filter=keep)
    written.append(tarball)
    return written
