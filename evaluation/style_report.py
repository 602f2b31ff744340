"""The style extractor's test report as the study's table: "true style" rows, "predicted as" columns.

`write_style_report` turns `StyleExtractorModule.test_report` into Markdown, CSV and a seaborn
heatmap (percent of each true style's test windows), a pure function of the report dict, so the
table can be rebuilt from `metrics.json` alone. Comparisons over seeds are the matrix tables'.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from common.atomic import write_text, write_with
from common.errors import D2MError

__all__ = [
    "confusion_frame",
    "frame_to_markdown",
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
