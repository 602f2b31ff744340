"""Seaborn plots of the ablation and timing tables (PNG, written atomically)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from common.atomic import write_with  # noqa: E402


def _save(fig, out: Path) -> Path:
    write_with(out, lambda tmp: fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png"))
    plt.close(fig)
    return out


def plot_ablation(runs: pd.DataFrame, metrics: dict[str, str], out: Path) -> Path:
    """One panel per metric: a bar per cell (mean, 95% interval over seeds) with each seed as a dot."""
    shown = [m for m in metrics if m in runs.columns]
    label = runs["cell"] if runs["device"].nunique() == 1 else runs["cell"] + " (" + runs["device"] + ")"
    long = runs.assign(row=label).melt(id_vars=["row", "seed"], value_vars=shown, var_name="metric")
    long["metric"] = long["metric"].map(metrics)
    long["value"] = long["value"].astype(float)
    n = max(1, len(shown))
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, (name, part) in zip(axes.flat, long.groupby("metric", sort=False)):
        sns.barplot(data=part, x="row", y="value", ax=ax, errorbar=("ci", 95), color="#8fb3d9")
        sns.stripplot(data=part, x="row", y="value", ax=ax, color="black", size=3)
        ax.set_title(name)
        ax.set_xlabel("")
        ax.set_ylabel("")
        ax.tick_params(axis="x", rotation=30)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    return _save(fig, out)


def plot_timing(timing: pd.DataFrame, out: Path) -> Path:
    """Milliseconds per training step for each stage, one bar per device (log scale)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    sns.barplot(data=timing, x="stage", y="ms_per_step", hue="device", ax=ax)
    ax.set_yscale("log")
    ax.set_ylabel("ms per training step (median)")
    ax.set_xlabel("")
    fig.tight_layout()
    return _save(fig, out)
