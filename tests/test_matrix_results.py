"""A real tiny matrix with W&B on: early-stopped runs are finished, every cell has an evaluation run
in W&B holding its metrics, and `d2m table` rebuilds the same tables once every wandb/ is gone."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from wandb_offline import find_offline_runs, read_when_written

from ablations.matrix import expand, load_matrix
from ablations.runner import run_matrix
from experiments.loggers import run_tags
from experiments.run import run_experiment
from experiments.rundir import run_progress
from experiments.stage_graph import STAGES

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
TABLE_FILES = ("ablation.csv", "ablation.md", "timing.csv", "timing.md")


def d2m_table(path, cwd, *args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "d2m", "table", str(path), *args], capture_output=True, text=True,
                         cwd=cwd, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return Path(out.stdout.strip().splitlines()[-1])


def test_matrix_with_wandb_then_tables_from_run_directories_alone(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    overrides = {"preset": "tiny", "data.root": str(tiny_dataset), "data.source": "canonical",
                 "runs_dir": str(tmp_path / "runs"), "logging.wandb": True}
    f = tmp_path / "m.yaml"
    f.write_text(json.dumps({"name": "m", "base": "tiny", "seeds": [0], "devices": ["cpu"], "overrides": overrides,
                             "cells": {"full": {}, "no-kl": {"composition.losses.kl.enabled": False}}}))
    full = expand(load_matrix(f))[0]
    early = run_experiment(full.cfg, until="style", on_event=lambda *_: None)  # as `d2m train style` leaves it
    assert run_progress(early) == ["data", "style"]

    out = run_matrix(f, jobs=2, results_dir=tmp_path / "results")
    cells = {c["cell"]: c for c in json.loads((out / "cells.json").read_text())}
    assert cells["full"]["status"] == "done"
    assert cells["full"]["note"] == "resumed after decomposition"  # the shared VAE was trained first
    assert run_progress(early) == list(STAGES)

    for run in expand(load_matrix(f)):  # one evaluation run per cell, its summary = the cell's metrics
        folder = Path(cells[run.cell]["run_dir"])
        files = find_offline_runs(folder / "wandb")
        assert len(files) == 1, files
        metrics = json.loads((folder / "metrics.json").read_text())
        logged = read_when_written(files[0], metrics)
        assert (logged["job_type"], logged["group"]) == ("evaluation", "m")
        assert set(logged["tags"]) == set(run_tags(run.cfg))
        evaluation = {k: v for k, v in metrics.items() if k.startswith(("evaluation/", "reference/"))}
        assert len(evaluation) > 10
        assert {k: logged["summary"].get(k) for k in evaluation} == evaluation

    before = {name: (out / name).read_bytes() for name in TABLE_FILES}
    wandb_dirs = [p for p in tmp_path.rglob("wandb") if p.is_dir()]
    assert any(find_offline_runs(p) for p in wandb_dirs if "stages" in p.parts)  # training runs too
    assert find_offline_runs(out / "wandb")  # the matrix's summary run
    for p in wandb_dirs:
        shutil.rmtree(p)
    assert not [p for p in tmp_path.rglob("wandb") if p.is_dir()]

    assert d2m_table(out, tmp_path) == out
    assert {name: (out / name).read_bytes() for name in TABLE_FILES} == before
    for path, target in ((tmp_path / "runs" / "m", "from-group"), (f, "from-matrix")):
        written = d2m_table(path, tmp_path, "--out", str(tmp_path / target))
        assert {name: (written / name).read_bytes() for name in TABLE_FILES} == before, path
