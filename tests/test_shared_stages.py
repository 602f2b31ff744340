"""Stages that several cells of a matrix share are trained first, once, deepest first."""

import json

from ablations.matrix import expand, load_matrix
from ablations.runner import shared_stages
from experiments.rundir import mark_done, stage_dir


def runs(tmp_path, cells, seeds=(0,)):
    f = tmp_path / "m.yaml"
    f.write_text(json.dumps({"name": "m", "base": "tiny", "seeds": list(seeds), "devices": ["cpu"],
                             "overrides": {"runs_dir": str(tmp_path / "runs")}, "cells": cells}))
    return expand(load_matrix(f))


def plan(rs, until="evaluation"):
    return [(r.label, stage) for r, stage in shared_stages(rs, until)]


def test_cells_that_differ_in_the_gan_share_the_vae_and_the_style_extractor(tmp_path):
    rs = runs(tmp_path, {"full": {}, "no-kl": {"composition.losses.kl.enabled": False}})
    assert plan(rs) == [(rs[0].label, "decomposition"), (rs[0].label, "style")]
    assert plan(rs, until="composition") == [(rs[0].label, "decomposition"), (rs[0].label, "style")]


def test_cells_that_differ_in_the_vae_share_only_the_style_extractor(tmp_path):
    rs = runs(tmp_path, {"a": {}, "b": {"decomposition.optim.lr": 5e-3}})
    assert plan(rs) == [(rs[0].label, "style")]


def test_each_seed_has_its_own_shared_stages_and_a_lone_cell_has_none(tmp_path):
    rs = runs(tmp_path, {"a": {}, "b": {"composition.optim.lr": 1e-3}}, seeds=(0, 1))
    got = plan(rs)
    assert len(got) == 4 and {stage for _, stage in got} == {"decomposition", "style"}
    assert {label for label, _ in got} == {rs[0].label, next(r.label for r in rs if r.seed == 1)}
    assert plan(runs(tmp_path, {"a": {}})) == []


def test_a_trained_shared_stage_is_not_trained_again(tmp_path):
    rs = runs(tmp_path, {"full": {}, "no-kl": {"composition.losses.kl.enabled": False}})
    folder = stage_dir(rs[0].cfg, "decomposition")
    folder.mkdir(parents=True)
    mark_done(folder)
    assert plan(rs) == [(rs[0].label, "style")]


def test_one_run_trains_each_of_its_shared_stages_in_turn_and_stops_at_a_failure(tmp_path, monkeypatch):
    from ablations import runner

    rs = runs(tmp_path, {"full": {}, "no-kl": {"composition.losses.kl.enabled": False}})
    calls = []

    def fake(run, until, shared, **kw):
        calls.append((run.label, until, shared))
        return {"cell": run.cell, "seed": run.seed, "status": "failed" if until == "style" else "done"}

    monkeypatch.setattr(runner, "_run_cell", fake)
    label = rs[0].label
    result = runner._train_shared(rs[0], {label: ["decomposition", "style", "composition"]})
    assert calls == [(label, "decomposition", True), (label, "style", True)]
    assert result["status"] == "failed"
