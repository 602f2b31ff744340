"""`reuse_stages_from`: a matrix takes the finished stage folders of another instead of retraining."""

import json
import os
from pathlib import Path

import pytest
import yaml

from ablations import reuse
from ablations.matrix import expand, load_matrix
from ablations.reuse import reuse_stages
from ablations.runner import run_matrix
from common.errors import D2MError
from experiments.rundir import is_done, stage_dir

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "experiments" / "configs" / "tiny.yaml"


def write_matrix(folder: Path, name: str, runs_dir: Path, **extra) -> Path:
    spec = {"name": name, "base": str(TINY), "seeds": [0], "devices": ["cpu"], "until": "style",
            "overrides": {"runs_dir": str(runs_dir), "logging.wandb": False}, "cells": {"only": {}}, **extra}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def finished_stage(folder: Path) -> Path:
    """A stage folder as a finished stage leaves it: a checkpoint and a done.json naming both."""
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "checkpoints" / "best.ckpt").write_bytes(b"weights")
    record = {"dir": str(folder.resolve()), "checkpoint": str((folder / "checkpoints" / "best.ckpt").resolve()),
              "metrics": {"test/acc": 0.5}, "key": folder.name.split("-")[-1]}
    (folder / "done.json").write_text(json.dumps(record))
    return folder


def test_a_finished_stage_is_taken_as_links_and_names_its_new_folder(tmp_path):
    runs = expand(load_matrix(write_matrix(tmp_path, "b", tmp_path / "runs", reuse_stages_from=["a"])))
    mine = stage_dir(runs[0].cfg, "style")
    theirs = finished_stage(tmp_path / "runs" / "a" / "stages" / mine.name)
    before = (theirs / "done.json").read_text()

    taken = reuse_stages(runs, "style", ["missing", "a"])

    assert taken == [("a", mine)]
    assert is_done(mine)
    record = json.loads((mine / "done.json").read_text())
    assert record["dir"] == str(mine.resolve())
    assert record["checkpoint"] == str((mine / "checkpoints" / "best.ckpt").resolve())
    assert record["metrics"] == {"test/acc": 0.5}
    assert os.path.samefile(mine / "checkpoints" / "best.ckpt", theirs / "checkpoints" / "best.ckpt")
    assert (theirs / "done.json").read_text() == before  # the other matrix is untouched
    assert [p.name for p in mine.parent.iterdir()] == [mine.name]  # no temporary folder left
    assert reuse_stages(runs, "style", ["a"]) == []  # taken once


def test_a_folder_the_matrix_has_is_never_replaced(tmp_path):
    runs = expand(load_matrix(write_matrix(tmp_path, "b", tmp_path / "runs")))
    mine = stage_dir(runs[0].cfg, "style")
    finished_stage(tmp_path / "runs" / "a" / "stages" / mine.name)
    mine.mkdir(parents=True)
    (mine / "last.ckpt").write_bytes(b"half trained")  # an interrupted stage of its own: it resumes

    assert reuse_stages(runs, "style", ["a"]) == []
    assert sorted(p.name for p in mine.iterdir()) == ["last.ckpt"]


@pytest.mark.parametrize("value", ["a", [""], ["../a"], [3]])
def test_reuse_stages_from_must_be_a_list_of_names(tmp_path, value):
    path = write_matrix(tmp_path, "b", tmp_path / "runs", reuse_stages_from=value)
    with pytest.raises(D2MError, match="reuse_stages_from"):
        load_matrix(path)


@pytest.mark.slow
def test_a_matrix_runs_on_the_stages_of_another(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runs_dir = tmp_path / "runs"
    data = {"data.root": str(tiny_dataset), "data.source": "canonical"}
    first = write_matrix(tmp_path, "a", runs_dir, overrides={"runs_dir": str(runs_dir), "logging.wandb": False, **data})
    run_matrix(first, results_dir=tmp_path / "results")
    second = write_matrix(tmp_path, "b", runs_dir, reuse_stages_from=["a"],
                          overrides={"runs_dir": str(runs_dir), "logging.wandb": False, **data})
    out = run_matrix(second, results_dir=tmp_path / "results")

    assert [c["status"] for c in json.loads((out / "cells.json").read_text())] == ["done"]
    log = (out / "logs" / "only-s0-cpu.log").read_text()
    assert "style: cached" in log and "style: start" not in log  # found trained, not trained again
    style = stage_dir(expand(load_matrix(second))[0].cfg, "style")
    assert json.loads((style / "done.json").read_text())["dir"] == str(style.resolve())


def test_a_folder_taken_first_by_a_matrix_beside_it_is_kept(tmp_path, monkeypatch):
    runs = expand(load_matrix(write_matrix(tmp_path, "b", tmp_path / "runs")))
    mine = stage_dir(runs[0].cfg, "style")
    theirs = finished_stage(tmp_path / "runs" / "a" / "stages" / mine.name)
    real_copy = reuse._copy_tree

    def copy_while_another_takes_it(src, dst):  # the other process finishes its copy meanwhile
        real_copy(src, mine)
        real_copy(src, dst)

    monkeypatch.setattr(reuse, "_copy_tree", copy_while_another_takes_it)
    assert reuse_stages(runs, "style", ["a"]) == [("a", mine)]
    assert is_done(mine) and sorted(p.name for p in mine.parent.iterdir()) == [mine.name]
    assert (theirs / "done.json").is_file()
