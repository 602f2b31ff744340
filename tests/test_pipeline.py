"""End to end on tiny data: one experiment through every stage, resume, DDP, and matrices."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ablations.matrix import MATRIX_DIR, expand, load_matrix
from ablations.runner import run_matrix
from common.errors import D2MError
from experiments.config import config_hash, load_config
from experiments.presets import PRESETS
from experiments.run import run_experiment
from experiments.rundir import is_done, load_run
from experiments.stage_graph import STAGES

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def d2m(*args, env=None, **kw):
    return subprocess.run([sys.executable, "-m", "d2m", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}, **kw)


def test_run_writes_every_result_and_rerun_is_a_no_op(tiny_overrides):
    cfg = load_config("tiny", tiny_overrides)
    events = []
    folder = run_experiment(cfg, on_event=lambda s, e: events.append((s, e)))
    assert is_done(folder)
    for name in ("config.yaml", "stages.json", "metrics.json", "timings.json"):
        assert (folder / name).is_file(), name
    metrics = json.loads((folder / "metrics.json").read_text())
    for key in ("style/test/acc", "decomposition/test/recon_px", "evaluation/fid_kinetic", "evaluation/beat_f1",
                "reference/beat_f1"):
        assert key in metrics, key
    timings = json.loads((folder / "timings.json").read_text())
    assert timings["composition"]["ms_per_step"] > 0 and timings["composition"]["device"] == "cpu"
    assert ("composition", "done") in events
    run = load_run(folder)
    assert run.checkpoint("composition").is_file()
    for stage, entry in run.stages.items():  # each stage folder holds what its key hashes, not the whole config
        stage_folder = Path(entry["dir"])
        assert not (stage_folder / "config.yaml").exists()
        assert config_hash(yaml.safe_load((stage_folder / "stage.yaml").read_text())) == entry["key"], stage
    assert json.loads((folder / "done.json").read_text())["stages"] == list(STAGES)
    again = []
    assert run_experiment(cfg, on_event=lambda s, e: again.append((s, e))) == folder
    assert {e for _, e in again} == {"cached"}


def test_killed_run_resumes(tiny_overrides, tmp_path):
    overrides = [*tiny_overrides, "composition.optim.max_steps=400", "composition.optim.max_epochs=400"]
    proc = subprocess.Popen([sys.executable, "-m", "d2m", "run", "tiny", *overrides], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    stages_dir = Path(tiny_overrides[-1].split("=", 1)[1]) / "tiny" / "stages"
    deadline = time.time() + 240
    while time.time() < deadline and not list(stages_dir.glob("composition-*/stage.yaml")):
        time.sleep(0.5)
    time.sleep(3)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    composition = list(stages_dir.glob("composition-*"))
    assert composition and not is_done(composition[0]), "the run should have been killed mid-composition"
    assert is_done(next(stages_dir.glob("decomposition-*")))
    events = []
    folder = run_experiment(load_config("tiny", overrides), on_event=lambda s, e: events.append((s, e)))
    assert ("decomposition", "cached") in events and ("style", "cached") in events
    assert ("composition", "done") in events and is_done(folder)


def test_one_stage_trains_under_ddp_with_two_cpu_processes(tiny_overrides):
    out = d2m("train", "decomposition", "tiny", *tiny_overrides, "trainer.strategy=ddp", "trainer.devices=2",
              timeout=400)
    assert out.returncode == 0, out.stderr[-3000:]
    folder = Path(out.stdout.strip().splitlines()[-1])
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["decomposition/test/recon_px"] > 0


def write_matrix(tmp_path, cells, name="m"):
    f = tmp_path / f"{name}.yaml"
    f.write_text(json.dumps({"name": name, "base": "tiny", "seeds": [0], "devices": ["cpu", "cuda"], "cells": cells}))
    return f


def test_matrix_shares_stages_isolates_failures_and_skips_finished(tiny_overrides, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    f = write_matrix(tmp_path, {
        "full": {},
        "no-style-alignment": {"composition.losses.style_alignment.enabled": False},
        "broken": {"data.styles": ["no-such-style"]},
    })
    with pytest.raises(D2MError, match="1 of .* runs failed"):
        run_matrix(f, jobs=2, extra_overrides=tiny_overrides, results_dir=tmp_path / "results")
    stages = Path(tiny_overrides[-1].split("=", 1)[1]) / "m" / "stages"
    assert len(list(stages.glob("style-*/done.json"))) == 1  # shared by every cell, trained once
    assert len(list(stages.glob("decomposition-*/done.json"))) == 1
    assert len(list(stages.glob("composition-*/done.json"))) == 2
    cells = json.loads((tmp_path / "results" / "m" / "cells.json").read_text())
    status = {(c["cell"], c["device"]): c["status"] for c in cells}
    assert status[("full", "cpu")] == "done" and status[("broken", "cpu")] == "failed"
    if not __import__("torch").cuda.is_available():
        assert status[("full", "cuda")] == "skipped"
    table = pd.read_csv(tmp_path / "results" / "m" / "ablation.csv")
    assert list(table["cell"])[:2] == ["full", "no-style-alignment"]
    before = (tmp_path / "results" / "m" / "ablation.csv").read_bytes()
    with pytest.raises(D2MError):
        run_matrix(f, jobs=1, extra_overrides=tiny_overrides, results_dir=tmp_path / "results")
    cells = json.loads((tmp_path / "results" / "m" / "cells.json").read_text())
    assert [c.get("note") for c in cells if c["cell"] == "full" and c["device"] == "cpu"] == ["already finished"]
    assert (tmp_path / "results" / "m" / "ablation.csv").read_bytes() == before


MATRIX_FILES = sorted(MATRIX_DIR.glob("*.yaml"))
TUNING_FILES = [p for p in MATRIX_FILES if p.stem.startswith("tuning-")]


def at_tiny_sizes(overrides: list[str]) -> list[str]:
    """A tuning matrix pins the sizes and budgets of the recipe it measured; the tests run it at tiny's."""
    tiny = PRESETS["tiny"]
    return [*overrides, f"style.hidden={tiny['style']['hidden']}",
            f"style.optim.max_epochs={tiny['style']['optim']['max_epochs']}",
            f"decomposition.optim.max_steps={tiny['decomposition']['optim']['max_steps']}",
            f"composition.optim.max_steps={tiny['composition']['optim']['max_steps']}"]


@pytest.mark.parametrize("path", MATRIX_FILES, ids=lambda p: p.stem)
def test_every_cell_of_every_matrix_file_is_a_valid_config(path, tiny_overrides):
    """A new matrix file is checked the day it is added: each cell's config is built and validated."""
    matrix = load_matrix(path)
    runs = expand(matrix, at_tiny_sizes(tiny_overrides))
    assert {r.cell for r in runs} == set(matrix.cells)
    assert {r.seed for r in runs} == set(matrix.seeds)


@pytest.mark.parametrize("path", [p for p in MATRIX_FILES if p not in TUNING_FILES], ids=lambda p: p.stem)
def test_every_make_target_matrix_runs_on_tiny_data(path, tiny_overrides, tmp_path, monkeypatch):
    """The matrices behind the make targets, every cell at one seed, tiny sizes, CPU: tables and dances."""
    monkeypatch.chdir(tmp_path)
    matrix = load_matrix(path)
    out = run_matrix(path, jobs=2, only_seed=matrix.seeds[0], only_device="cpu",
                     extra_overrides=at_tiny_sizes(tiny_overrides), results_dir=tmp_path / "results")
    assert (out / f"{matrix.table}.csv").is_file() and (out / f"{matrix.table}.md").is_file()
    table = pd.read_csv(out / f"{matrix.table}.csv")
    assert set(matrix.cells) <= set(table["cell"])
    if matrix.render:
        assert sorted(p.stem for p in (out / "dances").glob("*.mp4")) == sorted(matrix.cells)


def test_the_last_cell_of_every_tuning_matrix_trains_on_tiny_data(tiny_overrides, tmp_path, monkeypatch):
    """Each tuning matrix's last cell (its cells differ only in override values), all in one matrix.

    One matrix, with a cell per file holding that file's overrides and its last cell's, trains the
    stages the files share once and makes one table: a file whose overrides no longer train fails
    its own row. Every tuning file is based on the demo config, which this relies on.
    """
    monkeypatch.chdir(tmp_path)
    cells = {}
    for path in TUNING_FILES:
        matrix = load_matrix(path)
        assert matrix.base == load_matrix(TUNING_FILES[0]).base, path
        last = list(matrix.cells)[-1]
        cells[path.stem] = {**matrix.overrides, **matrix.cells[last]}
    combined = tmp_path / "tuning-all.yaml"
    combined.write_text(yaml.safe_dump({"name": "tuning-all", "base": load_matrix(TUNING_FILES[0]).base,
                                        "seeds": [0], "devices": ["cpu"], "baseline": TUNING_FILES[0].stem,
                                        "cells": cells}))
    out = run_matrix(combined, jobs=2, extra_overrides=at_tiny_sizes(tiny_overrides),
                     results_dir=tmp_path / "results")
    status = {c["cell"]: c["status"] for c in json.loads((out / "cells.json").read_text())}
    assert status == {stem: "done" for stem in cells}
    table = pd.read_csv(out / "ablation.csv")
    assert set(cells) <= set(table["cell"])  # beside the controls' rows


def test_sweep_export_names_every_cell(tmp_path):
    out = run_matrix("no-style-regressor", export_sweep=str(tmp_path / "sweep.yaml"))
    import yaml

    spec = yaml.safe_load(out.read_text())
    assert spec["method"] == "grid"
    assert spec["parameters"]["cell"]["values"] == ["full", "no-style-regressor"]
    assert spec["parameters"]["seed"]["values"] == [0, 1, 2]
