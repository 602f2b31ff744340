"""Launchers: the local runner and submitit jobs give the same run folders, resume and tables."""

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from ablations.launchers import LocalLauncher, SubmititLauncher, make_launcher, parse_params
from ablations.matrix import expand, load_matrix
from ablations.runner import run_matrix
from common.errors import D2MError
from experiments.rundir import is_done, run_dir


def write_matrix(tmp_path, cells, name="m", devices=("cpu", "cuda")):
    f = tmp_path / f"{name}.yaml"
    f.write_text(json.dumps({"name": name, "base": "tiny", "seeds": [0], "devices": list(devices), "cells": cells}))
    return f


def test_params_are_parsed_with_numbers_and_bad_items_are_named():
    assert parse_params("slurm_partition=gpu, timeout_min=90,mem_gb=7.5,") == {
        "slurm_partition": "gpu", "timeout_min": 90, "mem_gb": 7.5}
    assert parse_params("") == {}
    with pytest.raises(D2MError, match="'oops' is not key=value"):
        parse_params("timeout_min=5,oops")


def test_unknown_launcher_and_cluster_are_one_line_errors(tmp_path, monkeypatch):
    with pytest.raises(D2MError, match="unknown launcher 'pbs'; choices: local, submitit"):
        make_launcher("pbs", tmp_path)
    monkeypatch.setenv("D2M_SUBMITIT_CLUSTER", "lsf")
    with pytest.raises(D2MError, match="D2M_SUBMITIT_CLUSTER 'lsf'"):
        make_launcher("submitit", tmp_path)
    monkeypatch.setenv("D2M_SUBMITIT_CLUSTER", "local")
    monkeypatch.setenv("D2M_SUBMITIT", "no_such_parameter=3")
    with pytest.raises(D2MError, match="D2M_SUBMITIT"):
        make_launcher("submitit", tmp_path)


def test_local_executor_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("D2M_SUBMITIT_CLUSTER", "local")
    monkeypatch.delenv("D2M_SUBMITIT", raising=False)
    launch = make_launcher("submitit", tmp_path)
    assert isinstance(launch, SubmititLauncher) and launch.cluster == "local"
    assert launch.params["timeout_min"] >= 24 * 60  # a cell must not be killed at submitit's 5-minute default
    assert launch.cuda_available() == torch.cuda.is_available()
    assert isinstance(make_launcher("local", tmp_path), LocalLauncher)


def test_a_job_that_dies_becomes_a_failed_entry_and_the_rest_still_come_back(tmp_path, monkeypatch):
    """A failure of the job itself (not of the run inside it) is reported per run, in submission order."""
    monkeypatch.setenv("D2M_SUBMITIT_CLUSTER", "local")
    monkeypatch.chdir(tmp_path)
    f = write_matrix(tmp_path, {"a": {}, "b": {"composition.hidden": 12}}, devices=["cpu"])
    runs = expand(load_matrix(f), [f"runs_dir={tmp_path / 'runs'}"])

    def cell(run):  # pickled by value: a job process of the local executor runs it
        if run.cell == "a":
            raise RuntimeError("node lost")
        return {"cell": run.cell, "seed": run.seed, "device": run.device, "status": "done"}

    launch = SubmititLauncher(tmp_path / "submitit")
    results = list(launch.map(cell, runs, jobs=1))
    assert [r["cell"] for r in results] == ["a", "b"]
    assert results[0]["status"] == "failed" and "node lost" in results[0]["error"]
    assert Path(results[0]["log"]).is_file() and "node lost" in Path(results[0]["log"]).read_text()
    assert results[0]["run_dir"] == str(run_dir(runs[0].cfg))
    assert results[1]["status"] == "done" and results[1]["job_id"] != results[0]["job_id"]


@pytest.mark.slow
def test_submitit_matrix_gives_the_local_runners_folders_tables_and_resume(tiny_overrides, tmp_path, monkeypatch):
    monkeypatch.setenv("D2M_SUBMITIT_CLUSTER", "local")
    monkeypatch.chdir(tmp_path)
    f = write_matrix(tmp_path, {
        "full": {},
        "no-kl": {"composition.losses.kl.enabled": False},
        "broken": {"data.styles": ["no-such-style"]},
    })
    results = tmp_path / "results"
    with pytest.raises(D2MError, match="1 of .* runs failed"):
        run_matrix(f, jobs=2, extra_overrides=tiny_overrides, results_dir=results, launcher="submitit")
    cells = json.loads((results / "m" / "cells.json").read_text())
    status = {(c["cell"], c["device"]): c for c in cells}
    expected = {r.cell: run_dir(r.cfg) for r in expand(load_matrix(f), tiny_overrides) if r.device == "cpu"}
    for name in ("full", "no-kl"):
        entry = status[(name, "cpu")]
        assert entry["status"] == "done" and entry["job_id"], entry
        assert Path(entry["run_dir"]) == expected[name] and is_done(expected[name])
        assert (results / "m" / "submitit" / entry["job_id"]).is_dir()
    assert status[("broken", "cpu")]["status"] == "failed"
    assert "no-such-style" in Path(status[("broken", "cpu")]["log"]).read_text()
    if not torch.cuda.is_available():
        assert status[("full", "cuda")]["status"] == "skipped"
    stages = Path(tiny_overrides[-1].split("=", 1)[1]) / "m" / "stages"
    assert len(list(stages.glob("decomposition-*/done.json"))) == 1  # shared through the stage lock
    assert len(list(stages.glob("composition-*/done.json"))) == 2
    table = pd.read_csv(results / "m" / "ablation.csv")
    assert list(table["cell"])[:2] == ["full", "no-kl"]
    before = (results / "m" / "ablation.csv").read_bytes()
    with pytest.raises(D2MError):
        run_matrix(f, jobs=2, extra_overrides=tiny_overrides, results_dir=results, launcher="submitit")
    again = {(c["cell"], c["device"]): c for c in json.loads((results / "m" / "cells.json").read_text())}
    for name in ("full", "no-kl"):  # finished runs are answered here, not submitted again
        assert again[(name, "cpu")]["note"] == "already finished" and "job_id" not in again[(name, "cpu")]
    assert (results / "m" / "ablation.csv").read_bytes() == before


def test_the_cli_passes_the_launcher_through(monkeypatch):
    import ablations.runner
    from d2m.cli import build_parser, main

    assert build_parser().parse_args(["ablate", "m.yaml"]).launcher == "local"
    seen = {}
    monkeypatch.setattr(ablations.runner, "run_matrix", lambda path, **kw: seen.update(kw) or path)
    assert main(["ablate", "m.yaml", "--launcher", "submitit", "--jobs", "3"]) == 0
    assert seen["launcher"] == "submitit" and seen["jobs"] == 3
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["ablate", "m.yaml", "--launcher", "pbs"])
    assert exit_info.value.code == 2
