"""The style extractor's report files: the study's confusion table and the architecture comparison."""

import pandas as pd
import pytest
import torch

from evaluation.style_report import confusion_frame, write_style_report
from lightning_modules.style_module import confusion_report

CLASSES = ["zumba", "ballet", "hiphop"]


def report(counts) -> dict:
    return confusion_report(torch.tensor(counts), CLASSES)


def test_confusion_table_has_true_style_rows_predicted_as_columns_in_percent(tmp_path):
    r = report([[8, 2, 0], [1, 6, 3], [0, 0, 5]])
    df = confusion_frame(r)
    assert df.index.name == "true style" and df.columns.name == "predicted as"
    assert list(df.index) == CLASSES and list(df.columns) == CLASSES
    assert df.sum(axis=1).tolist() == pytest.approx([100.0, 100.0, 100.0])

    paths = write_style_report(r, tmp_path)
    assert {p.name for p in paths.values()} == {"confusion.md", "confusion.csv", "confusion.png"}
    csv = pd.read_csv(paths["csv"], index_col=0)
    assert csv.index.name == "true style" and csv.loc["zumba", "zumba"] == pytest.approx(80.0)
    assert csv.sum(axis=1).tolist() == pytest.approx([100.0, 100.0, 100.0])
    md = paths["md"].read_text()
    assert "true style \\ predicted as" in md and "| ballet | 10.0 | 60.0 | 30.0 |" in md
    assert "precision %" in md and "76.0%" in md  # 19 of 25 windows right
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
