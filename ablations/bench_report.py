"""The outputs of `d2m bench`: bench.csv, bench.md, bench.png and fast_path.csv, and a W&B table.

The CSV holds every number (one row per module variant and device); the Markdown holds the same
table, readable, with a caption that states what was measured, on what, how loaded the machine
was, and the assumptions behind the projected training time. Files are written atomically and before
W&B is touched, so a W&B failure can never lose them.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from ablations.tables import frame_to_markdown
from common.atomic import write_text, write_with
from common.numbers import format_number

__all__ = ["COLUMNS", "FAST_COLUMNS", "NO_CUDA", "fast_path_frame", "log_wandb", "markdown", "plot", "write_outputs"]

NO_CUDA = "no CUDA device present"
COLUMNS = [
    "module", "label", "family", "device", "device_name", "precision", "compiled", "threads", "batch_size",
    "steps", "warmup", "ms_per_step", "plain_ms_per_step", "lightning_overhead_pct", "samples_per_s",
    "peak_mem_mb", "gflop_per_step", "achieved_gflops", "matmul_peak_gflops", "pct_of_peak", "steps_per_epoch",
    "epochs", "total_steps", "projected_hours", "gpu_speedup", "cuda", "note",
]
FAST_COLUMNS = [
    "device", "model", "fast_ms", "plain_recurrence_ms", "time_saved_pct", "speedup_x", "fast_plain_loop_ms",
    "plain_recurrence_plain_loop_ms", "time_saved_plain_loop_pct", "fast_gflop", "plain_recurrence_gflop",
]


def _num(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f


def _fmt(v: Any, digits: int = 3, suffix: str = "") -> str:
    text = format_number(_num(v), digits)
    return text if text == "-" else text + suffix


def fast_path_frame(table: pd.DataFrame, pairs: tuple[tuple[str, str], ...]) -> pd.DataFrame:
    """Per device, each fast case against its straightforward twin: time saved by the fast formulation."""
    rows = []
    for device in table["device"].unique():
        part = table[table["device"] == device].set_index("module")
        for fast, plain in pairs:
            if fast not in part.index or plain not in part.index:
                continue
            f, p = part.loc[fast], part.loc[plain]
            fm, pm = _num(f["ms_per_step"]), _num(p["ms_per_step"])
            fl, pl_ = _num(f["plain_ms_per_step"]), _num(p["plain_ms_per_step"])
            rows.append({
                "device": device, "model": f["family"], "fast_ms": fm, "plain_recurrence_ms": pm,
                "time_saved_pct": 100.0 * (pm - fm) / pm if pm > 0 else math.nan,
                "speedup_x": pm / fm if fm > 0 else math.nan,
                "fast_plain_loop_ms": fl, "plain_recurrence_plain_loop_ms": pl_,
                "time_saved_plain_loop_pct": 100.0 * (pl_ - fl) / pl_ if pl_ > 0 else math.nan,
                "fast_gflop": _num(f["gflop_per_step"]), "plain_recurrence_gflop": _num(p["gflop_per_step"]),
            })
    return pd.DataFrame(rows, columns=FAST_COLUMNS)


def _display(table: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, r in table.iterrows():
        if r["device"] == "cpu":
            speed = "-" if r["cuda"].startswith("measured") else r["cuda"]
        else:
            speed = _fmt(r["gpu_speedup"], suffix="x")
        rows.append({
            "module": r["label"], "device": r["device"], "batch": int(r["batch_size"]),
            "ms/step (Lightning)": _fmt(r["ms_per_step"], 4), "ms/step (plain loop)": _fmt(r["plain_ms_per_step"], 4),
            "Lightning overhead": _fmt(r["lightning_overhead_pct"], 2, "%"),
            "samples/s": _fmt(r["samples_per_s"]), "peak MB": _fmt(r["peak_mem_mb"]),
            "GFLOP/step": _fmt(r["gflop_per_step"]), "GFLOP/s": _fmt(r["achieved_gflops"]),
            "% of matmul peak": _fmt(r["pct_of_peak"], 2, "%"),
            "steps/epoch x epochs": f"{int(r['steps_per_epoch'])} x {int(r['epochs'])}",
            "projected (h)": _fmt(r["projected_hours"]), "GPU speed-up": speed,
        })
    return pd.DataFrame(rows)


def _fast_display(fast: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, r in fast.iterrows():
        rows.append({
            "model": r["model"], "device": r["device"],
            "fast ms/step": _fmt(r["fast_ms"], 4), "straightforward ms/step": _fmt(r["plain_recurrence_ms"], 4),
            "time saved": _fmt(r["time_saved_pct"], 2, "%"), "speed-up": _fmt(r["speedup_x"], 3, "x"),
            "time saved (plain loop)": _fmt(r["time_saved_plain_loop_pct"], 2, "%"),
            "GFLOP/step fast / straightforward": f"{_fmt(r['fast_gflop'])} / {_fmt(r['plain_recurrence_gflop'])}",
        })
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame, fast: pd.DataFrame, info: dict[str, Any]) -> str:
    """bench.md: a title, a caption with every assumption, the table, the fast-path comparison, notes."""
    peaks = "; ".join(f"{d}: {_fmt(v / 1e9, 4)} GFLOP/s ({k})" for (d, k), v in info["matmul_peaks"].items())
    lines = [
        f"# Training-step timing, `{info['preset']}` preset",
        "",
        f"Devices: {info['devices_text']}. CPU threads: {info['threads']}; load average at start / end: "
        f"{info['load_start']} / {info['load_end']} ({info['cpu_count']} logical CPUs). Precision: "
        f"{info['precision']}; torch.compile: {'on' if info['compile'] else 'off'}. torch {info['torch']}, "
        f"Python {info['python']}.",
        "",
        f"Each number is the median over {info['steps']} training steps after {info['warmup_text']} warm-up, on "
        "random batches of the preset's batch size preloaded on the device (no data loading, no host-device "
        "copies in the step). *Lightning*: the module's real `training_step` through a `Trainer` (loggers and "
        "checkpoints off; `self.log` still runs). *Plain loop*: the same forward, losses, backward, clipping and "
        "optimiser step in plain PyTorch, for the models with automatic optimisation (the composition GAN's "
        "toggled three-player step runs only in a Trainer, so it has none: `-`); the overhead column is "
        "(Lightning - plain) / plain. Samples/s and "
        "GFLOP/s use the Lightning time. Peak MB: " + info["memory_text"] + ".",
        "",
        "GFLOP/step: matrix products of one fp32 training step (forward and backward) counted by "
        "`torch.utils.flop_counter.FlopCounterMode`; element-wise work and the optimiser are not counted. "
        f"Matmul peak measured on this machine (large square matrix product): {peaks}.",
        "",
        "Projected time = ms/step x steps/epoch x epochs. Steps/epoch assume the default synthetic dataset at "
        f"this preset ({info['data_text']}), windows cut as the DataModules cut them (training clips only, no "
        "drop_last); epochs = the preset's `optim.max_epochs` per model (capped by `optim.max_steps` where set).",
        "",
        frame_to_markdown(_display(table)).rstrip(),
        "",
    ]
    if not fast.empty:
        lines += [
            "## Fast path vs the straightforward formulation",
            "",
            "`fast_recurrence` projects the decoders' constant input once instead of at every step, and "
            "(decomposition) `fused_pairs` runs the two jittered copies through each encoder as one batch and "
            "the decoded units the terms read through the pose decoder as one batch; the maths is the same. "
            "The straightforward rows switch both off (`fused_pairs=false fast_recurrence=false`; the composition "
            "GAN has only the recurrence switch). Time saved = (straightforward - fast) / straightforward, "
            "Lightning times; the plain-loop column is the same comparison without Lightning.",
            "",
            frame_to_markdown(_fast_display(fast)).rstrip(),
            "",
        ]
    notes = [f"- {r['label']} on {r['device']}: {r['note']}" for _, r in table.iterrows() if r.get("note")]
    if notes:
        lines += ["## Notes", "", *notes, ""]
    return "\n".join(lines)


def plot(table: pd.DataFrame, out: Path) -> Path:
    """Two panels: ms per step (log scale) and the share of the matmul peak, per module and device."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    data = table.assign(ms=pd.to_numeric(table["ms_per_step"], errors="coerce"),
                        pct=pd.to_numeric(table["pct_of_peak"], errors="coerce"))
    fig, axes = plt.subplots(1, 2, figsize=(13, 0.45 * max(4, len(data["label"].unique())) + 1.5))
    sns.barplot(data=data, y="label", x="ms", hue="device", ax=axes[0], orient="h")
    axes[0].set_xscale("log")
    axes[0].set_xlabel("ms per training step (median, Lightning)")
    axes[0].set_ylabel("")
    sns.barplot(data=data, y="label", x="pct", hue="device", ax=axes[1], orient="h")
    axes[1].set_xlabel("achieved FLOP/s, % of this device's matmul peak")
    axes[1].set_ylabel("")
    axes[1].set_yticklabels([])
    fig.tight_layout()

    def save(tmp: Path) -> None:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")

    try:
        write_with(out, save)
    finally:
        plt.close(fig)
    return out


def write_outputs(out: Path, table: pd.DataFrame, fast: pd.DataFrame, info: dict[str, Any]) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = {"csv": write_text(out / "bench.csv", table[COLUMNS].to_csv(index=False))}
    if not fast.empty:
        written["fast_csv"] = write_text(out / "fast_path.csv", fast.to_csv(index=False))
    written["md"] = write_text(out / "bench.md", markdown(table, fast, info))
    try:
        written["png"] = plot(table, out / "bench.png")
    except Exception as err:  # a plotting failure must not cost the tables
        print(f"d2m bench: plot not written: {err}", file=sys.stderr)
    return written


def log_wandb(table: pd.DataFrame, fast: pd.DataFrame, info: dict[str, Any], out: Path) -> bool:
    """The table (and the plot) as a W&B run: project d2m-lab, group bench, job type bench; offline by default.

    Any W&B failure is reported on stderr and swallowed: the files are already written.
    """
    run = None
    try:
        import wandb

        os.environ.setdefault("WANDB_SILENT", "true")
        os.environ.setdefault("WANDB_DISABLE_GIT", "true")
        config = {k: v for k, v in info.items() if isinstance(v, (str, int, float, bool))}
        run = wandb.init(project="d2m-lab", group="bench", job_type="bench", name=f"bench-{info['preset']}",
                         dir=str(out), mode=os.environ.get("WANDB_MODE", "offline"), config=config,
                         tags=[f"preset-{info['preset']}", *sorted(set(table["device"]))], reinit="finish_previous")
        run.log({"bench": wandb.Table(dataframe=table[COLUMNS].astype({"note": str, "cuda": str}))})
        if not fast.empty:
            run.log({"fast_path": wandb.Table(dataframe=fast)})
        png = out / "bench.png"
        if png.exists():
            run.log({"plot/bench": wandb.Image(str(png))})
        for _, r in table.iterrows():
            run.summary[f"{r['module']}/{r['device']}/ms_per_step"] = _num(r["ms_per_step"])
        return True
    except Exception as err:
        print(f"d2m bench: W&B logging failed ({type(err).__name__}: {err}); the files in {out} are complete",
              file=sys.stderr)
        return False
    finally:
        if run is not None:
            try:
                run.finish()
            except Exception as err:
                print(f"d2m bench: W&B finish failed: {err}", file=sys.stderr)
