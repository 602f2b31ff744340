"""The style extractor's test report as the study's table: "true style" rows, "predicted as" columns.

`write_style_report` turns `StyleExtractorModule.test_report` into Markdown, CSV and a seaborn
heatmap (percent of each true style's test windows); `write_comparison` turns several runs per
architecture into the mean +- std table that the architecture comparison reports. Both are pure
functions of report dicts, so the tables can be rebuilt from `metrics.json` files alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from datamodules.atomic import write_text, write_with
from datamodules.errors import D2MError

__all__ = [
    "comparison_frame",
    "confusion_frame",
    "frame_to_markdown",
    "write_comparison",
    "write_style_report",
]


def confusion_frame(report: Mapping) -> pd.DataFrame:
    """The confusion matrix in percent: index "true style", columns "predicted as"."""
    confusion = report.get("confusion")
    if not confusion:
        raise D2MError("style report has no 'confusion' table (was the extractor tested?)")
    classes = list(confusion)
    df = pd.DataFrame([[float(confusion[t].get(p, 0.0)) for p in classes] for t in classes],
                      index=pd.Index(classes, name="true style"),
                      columns=pd.Index(classes, name="predicted as"))
    return df


def frame_to_markdown(df: pd.DataFrame, digits: int = 1, index_label: str | None = None) -> str:
    """A GitHub Markdown table (numbers rounded); written here so no extra package is needed."""
    def fmt(v) -> str:
        if isinstance(v, (float, np.floating)):
            return f"{v:.{digits}f}"
        return str(v)

    label = index_label if index_label is not None else (df.index.name or "")
    header = [label] + [str(c) for c in df.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for idx, row in df.iterrows():
        lines.append("| " + " | ".join([str(idx)] + [fmt(v) for v in row.tolist()]) + " |")
    return "\n".join(lines) + "\n"


def _heatmap(df: pd.DataFrame, path: Path, title: str, fmt: str = ".1f", vmax: float | None = 100.0) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(1.2 * len(df.columns) + 2.5, 0.9 * len(df) + 1.8))
    sns.heatmap(df, annot=True, fmt=fmt, cmap="Blues", vmin=0.0, vmax=vmax, cbar=True, ax=ax)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=120)
    plt.close(fig)


def write_style_report(report: Mapping, out_dir: str | Path, stem: str = "confusion",
                       title: str | None = None) -> dict[str, Path]:
    """Write `<stem>.md`, `<stem>.csv` and `<stem>.png` into `out_dir`; return their paths."""
    out_dir = Path(out_dir)
    df = confusion_frame(report)
    title = title or f"Style extractor, test accuracy {float(report.get('accuracy', 0.0)):.1f}%"
    md = [f"**{title}** (percent of each true style's test windows; n = {report.get('n_test', '?')})", ""]
    md.append(frame_to_markdown(df, index_label="true style \\ predicted as"))
    if "precision" in report and "recall" in report:
        pr = pd.DataFrame({"precision %": pd.Series(report["precision"]), "recall %": pd.Series(report["recall"])})
        pr.index.name = "style"
        md += ["", frame_to_markdown(pr)]
    paths = {
        "md": write_text(out_dir / f"{stem}.md", "\n".join(md)),
        "csv": write_with(out_dir / f"{stem}.csv", lambda p: df.to_csv(p, float_format="%.4f")),
        "png": write_with(out_dir / f"{stem}.png", lambda p: _heatmap(df, p, title)),
    }
    return paths


def _mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single run)."""
    v = np.asarray([float(x) for x in values])
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def comparison_frame(reports: Mapping[str, Sequence[Mapping]]) -> pd.DataFrame:
    """Mean and std over runs (e.g. seeds) of accuracy and per-class precision, one row per architecture."""
    rows = []
    for arch, runs in reports.items():
        if not runs:
            continue
        row: dict = {"architecture": arch, "runs": len(runs)}
        row["accuracy_mean"], row["accuracy_std"] = _mean_std([r["accuracy"] for r in runs])
        for cls in runs[0].get("precision", {}):
            row[f"precision_{cls}_mean"], row[f"precision_{cls}_std"] = _mean_std(
                [r["precision"][cls] for r in runs])
        rows.append(row)
    if not rows:
        raise D2MError("no style extractor runs to compare")
    return pd.DataFrame(rows).set_index("architecture")


def write_comparison(reports: Mapping[str, Sequence[Mapping]], out_dir: str | Path,
                     stem: str = "comparison") -> dict[str, Path]:
    """Write `<stem>.csv` (means and stds), `<stem>.md` (mean +- std) and `<stem>.png` (bar plot)."""
    out_dir = Path(out_dir)
    df = comparison_frame(reports)
    metrics = [c[: -len("_mean")] for c in df.columns if c.endswith("_mean")]
    shown = pd.DataFrame(
        {m.replace("_", " ") + " %": [f"{df.loc[a, m + '_mean']:.1f} ± {df.loc[a, m + '_std']:.1f}" for a in df.index]
         for m in metrics},
        index=df.index,
    )
    shown.insert(0, "runs", df["runs"].astype(int).astype(str))
    md = "**Style extractor on unseen test music** (mean ± std over runs)\n\n" + frame_to_markdown(shown)

    def plot(path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(1.6 * len(metrics) + 3, 3.8))
        width = 0.8 / len(df)
        x = np.arange(len(metrics))
        for i, arch in enumerate(df.index):
            means = [df.loc[arch, m + "_mean"] for m in metrics]
            stds = [df.loc[arch, m + "_std"] for m in metrics]
            ax.bar(x + (i - (len(df) - 1) / 2) * width, means, width, yerr=stds, capsize=3, label=arch)
        ax.set_xticks(x, [m.replace("_", " ") for m in metrics], rotation=20)
        ax.set_ylim(0, 105)
        ax.set_ylabel("percent")
        ax.legend(loc="lower right")
        fig.tight_layout()
        fig.savefig(path, format="png", dpi=120)
        plt.close(fig)

    return {
        "md": write_text(out_dir / f"{stem}.md", md),
        "csv": write_with(out_dir / f"{stem}.csv", lambda p: df.to_csv(p, float_format="%.4f")),
        "png": write_with(out_dir / f"{stem}.png", plot),
    }
