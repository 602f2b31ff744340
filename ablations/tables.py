"""Ablation and timing tables as pure functions of run directories.

Nothing here reads or writes W&B: deleting every wandb/ folder leaves the tables unchanged (the W&B
summary run is a separate step, ablations/wandb_summary.py). Which runs a table holds comes from
ablations/rebuild.py. Outputs under
results/<matrix>/: <table>.csv/.md/.tex (cells x metrics, mean +- std over seeds, difference to the
baseline cell with its 95% interval and p-value, paired by seed, and the real-data reference row),
timing.csv/.md (stage x device), and PNG plots.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from ablations.stats import mean_std, paired
from common.atomic import read_json, write_text
from common.numbers import format_number

# The one list of metrics the tables show (Markdown, LaTeX, plots), in order, with their column names;
# the CSV keeps every metric a run recorded.
MAIN_METRICS = {
    "evaluation/fid_kinetic": "FID kinetic",
    "evaluation/fid_kinetic_floor": "FID kinetic floor",
    "evaluation/fid_classifier": "FID classifier",
    "evaluation/fid_classifier_floor": "FID classifier floor",
    "evaluation/style_consistency": "style consistency",
    "evaluation/style_consistency_floor": "style consistency floor",
    "evaluation/diversity_kinetic": "diversity",
    "evaluation/multimodality": "multimodality",
    "evaluation/beat_f1": "beat F1",
    "evaluation/beat_f1_floor": "beat F1 floor",
    "evaluation/beat_align": "beat align",
    "evaluation/beat_align_motion": "beat align (motion)",
    "evaluation/speed_ratio": "speed ratio",
    "decomposition/test/recon_px": "VAE recon (px)",
    "decomposition/test/recon_ratio": "VAE recon / first pose",
    "decomposition/test/speed_ratio": "VAE speed ratio",
    "style/test/acc": "style acc",
}
REFERENCE_ROW = "real dances"


def metrics_for(until: str, entries: list[dict[str, Any]]) -> dict[str, str]:
    """The columns to show: the main metrics, or for a style-extractor matrix its per-class report."""
    if until != "style":
        return MAIN_METRICS
    keys: set[str] = set()
    for e in entries:
        keys |= {k for k in (read_json(Path(e["run_dir"]) / "metrics.json") or {})
                 if k.startswith("style/test/") and k != "style/test/loss"}
    ordered = sorted(keys, key=lambda k: (k != "style/test/acc", "recall" in k, k))
    return {k: k.removeprefix("style/test/").replace("/", " ").replace("acc", "accuracy (%)") for k in ordered}


def collect_runs(entries: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per finished run: cell, seed, device and every scalar in its metrics.json."""
    rows = []
    for e in entries:
        metrics = read_json(Path(e["run_dir"]) / "metrics.json")
        if e.get("status") != "done" or metrics is None:
            continue
        rows.append({"cell": e["cell"], "seed": e["seed"], "device": e["device"], **metrics})
    return pd.DataFrame(rows)


def _row_label(df: pd.DataFrame) -> pd.Series:
    if df["device"].nunique() > 1:
        return df["cell"] + " (" + df["device"] + ")"
    return df["cell"]


def is_protocol(key: str) -> bool:
    """`<stage>/protocol/...`: how a score was measured (n, windows, directions), recorded in each run's
    metrics.json, not a score to average, compare between cells or test for a difference."""
    return "/protocol/" in key


def _by_seed(group: pd.DataFrame, metric: str) -> dict[int, float]:
    return {int(seed): float(value) for seed, value in zip(group["seed"], group[metric], strict=True)}


def ablation_table(runs: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Rows: cells (then the reference row); columns per metric: mean, std, n, diff, CI, p."""
    if runs.empty:
        return pd.DataFrame()
    runs = runs.drop(columns=[c for c in runs.columns if is_protocol(c)]).copy()  # one block, not many
    runs = runs.assign(row=_row_label(runs))
    metrics = [c for c in runs.columns if "/" in c and not c.startswith("reference/")]
    rows = []
    for label, group in runs.groupby("row", sort=False):
        device = group["device"].iloc[0]
        base = runs[(runs["cell"] == baseline) & (runs["device"] == device)]
        row: dict[str, Any] = {"cell": label, "n_seeds": len(group)}
        tests = set()
        for m in metrics:
            vals = group[m].astype(float).tolist()
            row[f"{m}_mean"], row[f"{m}_std"] = mean_std(vals)
            if not base.empty and group["cell"].iloc[0] != baseline:
                w = paired(_by_seed(group, m), _by_seed(base, m))
                tests.add(w.pop("test"))
                row.update({f"{m}_{k}": v for k, v in w.items()})
        if tests:
            row["comparison"] = tests.pop() if len(tests) == 1 else "mixed"
        rows.append(row)
    ref_cols = [c for c in runs.columns if c.startswith("reference/") and not c.startswith(CONTROLS_PREFIX)]
    if ref_cols:
        ref = {"cell": REFERENCE_ROW, "n_seeds": 0}
        for c in ref_cols:
            ref[f"evaluation/{c.split('/', 1)[1]}_mean"] = float(runs[c].astype(float).mean())
        rows.append(ref)
    rows += control_rows(runs, with_real=not ref_cols)
    return pd.DataFrame(rows)


CONTROLS_PREFIX = "reference/controls/"
TABLE_CONTROLS = ("real", "static", "random_walk")


def control_rows(runs: pd.DataFrame, with_real: bool = True) -> list[dict[str, Any]]:
    """Rows for the control dances under the cells: the ceiling (real), a statue and chance.

    A run's metrics.json carries them as `reference/controls/<control>/<metric>` (the real dances
    as `reference/<metric>`, shown as the reference row already unless `with_real`); they depend on
    the dataset only, so the mean over runs is the value.
    """
    rows = []
    for control in TABLE_CONTROLS:
        prefix = "reference/" if control == "real" else f"{CONTROLS_PREFIX}{control}/"
        if control == "real" and not with_real:
            continue
        cols = [c for c in runs.columns if c.startswith(prefix) and (control != "real" or
                                                                     not c.startswith(CONTROLS_PREFIX))]
        if cols:
            rows.append({"cell": f"control: {control.replace('_', ' ')}", "n_seeds": 0,
                         **{f"evaluation/{c[len(prefix):]}_mean": float(runs[c].astype(float).mean()) for c in cols}})
    return rows




def _cell_text(row: pd.Series, m: str, latex: bool) -> str:
    mean, std = row.get(f"{m}_mean"), row.get(f"{m}_std")
    pm = r" $\pm$ " if latex else " ± "
    text = format_number(mean) + (pm + format_number(std) if std is not None and not pd.isna(std) else "")
    diff = row.get(f"{m}_diff")
    if diff is not None and not pd.isna(diff):
        lo, hi, p = row.get(f"{m}_ci_low"), row.get(f"{m}_ci_high"), row.get(f"{m}_p")
        delta = r"$\Delta$" if latex else "Δ"
        ci = f" [{format_number(lo)}, {format_number(hi)}]" if not pd.isna(lo) else ""
        pv = f", p={format_number(p, 2)}" if not pd.isna(p) else ""
        text += f" ({delta} {format_number(diff)}{ci}{pv})"
    return text


def _comparison_words(table: pd.DataFrame) -> str:
    """How the table's differences were tested, for its caption."""
    kinds = set(table["comparison"].dropna()) if "comparison" in table.columns else set()
    if kinds == {"paired"}:
        return "paired by seed (the cells of one seed share its data, VAE and style extractor where their keys agree)"
    if kinds == {"welch"} or not kinds:
        return "Welch's test (the cells' seeds differ)"
    return "paired by seed where both cells ran the same seeds, Welch's test otherwise (column 'comparison')"


def shown_metrics(table: pd.DataFrame, metrics: dict[str, str]) -> dict[str, str]:
    return {m: name for m, name in metrics.items() if f"{m}_mean" in table.columns}


def to_markdown(table: pd.DataFrame, metrics: dict[str, str], caption: str) -> str:
    shown = shown_metrics(table, metrics)
    lines = [f"{caption}\n", "| cell | seeds | " + " | ".join(shown.values()) + " |",
             "|---|---|" + "---|" * len(shown)]
    for _, row in table.iterrows():
        cells = [_cell_text(row, m, latex=False) for m in shown]
        lines.append(f"| {row['cell']} | {int(row['n_seeds']) or '-'} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def frame_to_markdown(df: pd.DataFrame) -> str:
    """A plain Markdown table of a data frame, numbers to four significant digits."""
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(format_number(v, 4) if isinstance(v, float) else str(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def to_latex(table: pd.DataFrame, metrics: dict[str, str], caption: str) -> str:
    shown = shown_metrics(table, metrics)
    cols = "l r " + "c " * len(shown)
    lines = [r"\begin{table}[t]", r"\centering", rf"\begin{{tabular}}{{{cols.strip()}}}", r"\toprule",
             "cell & seeds & " + " & ".join(shown.values()) + r" \\", r"\midrule"]
    for _, row in table.iterrows():
        cells = [_cell_text(row, m, latex=True) for m in shown]
        name = str(row["cell"]).replace("_", r"\_")
        lines.append(f"{name} & {int(row['n_seeds']) or '-'} & " + " & ".join(cells) + r" \\")
    caption_tex = caption.replace("_", r"\_").replace("%", r"\%")
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{caption_tex}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def timing_table(entries: list[dict[str, Any]]) -> pd.DataFrame:
    """Stage x device: median ms per step, samples per second, steps and wall time of training.

    Stages shared by several cells are counted once (by stage key).
    """
    seen: set[tuple[str, str]] = set()
    rows = []
    for e in entries:
        if e.get("status") != "done":
            continue
        folder = Path(e["run_dir"])
        stages = read_json(folder / "stages.json", {})
        for stage, t in (read_json(folder / "timings.json", {}) or {}).items():
            key = (stage, stages.get(stage, {}).get("key", folder.name))
            if key in seen or not t:
                continue
            seen.add(key)
            rows.append({"stage": stage, "device": t.get("device", e["device"]), **t})
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame(rows)
    agg = df.groupby(["stage", "device"], sort=False).agg(
        runs=("ms_per_step", "size"), ms_per_step=("ms_per_step", "median"),
        samples_per_s=("samples_per_s", "median"), steps=("steps", "median"), fit_seconds=("fit_seconds", "median"),
    ).reset_index()
    if {"cpu", "cuda"} <= set(agg["device"]):
        cpu = agg[agg.device == "cpu"].set_index("stage")["ms_per_step"]
        agg["gpu_speedup"] = [cpu.get(s, math.nan) / ms if d == "cuda" else math.nan
                              for s, d, ms in zip(agg.stage, agg.device, agg.ms_per_step)]
    return agg


def build_tables(out: Path, entries: list[dict[str, Any]], baseline: str, title: str, table_name: str = "ablation",
                 metrics: dict[str, str] | None = None) -> dict[str, Path]:
    """Write every table and plot of a matrix from its run directories; returns the files written."""
    from ablations.plots import plot_ablation, plot_timing

    metrics = metrics or MAIN_METRICS
    written: dict[str, Path] = {}
    runs = collect_runs(entries)
    table = ablation_table(runs, baseline)
    if not table.empty:
        caption = (f"{title}: mean ± std over seeds; Δ = difference to '{baseline}' with 95% interval and p-value,"
                   f" {_comparison_words(table)}.")
        if "evaluation/beat_align" in metrics:
            caption += " Beat align uses sigma = 0.75 frames at 15 fps (3 frames at 60 fps)."
        if "evaluation/fid_kinetic" in metrics:
            caption += (" Floors: real-vs-real noise floors (a difference under about twice the floor is noise);"
                        " control rows: the same metrics on a held pose and a random walk.")
        written["csv"] = write_text(out / f"{table_name}.csv", table.to_csv(index=False))
        written["md"] = write_text(out / f"{table_name}.md", to_markdown(table, metrics, caption))
        written["tex"] = write_text(out / f"{table_name}.tex", to_latex(table, metrics, caption))
        written["png"] = plot_ablation(runs, metrics, out / f"{table_name}.png")
    timing = timing_table(entries)
    if not timing.empty:
        written["timing_csv"] = write_text(out / "timing.csv", timing.to_csv(index=False))
        written["timing_md"] = write_text(out / "timing.md", f"{title}: training-step timing\n\n"
                                          + frame_to_markdown(timing))
        written["timing_png"] = plot_timing(timing, out / "timing.png")
    return written
