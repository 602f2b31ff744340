"""Known answers on the built-in data: the metrics rank real dances above a statue, noise and chance."""

import math

import pandas as pd
import pytest

from d2m.cli import main
from evaluation.config import EvaluationConfig
from evaluation.controls import CONTROLS, control_dances, controls_table
from evaluation.evaluate import METRIC_NAMES, build_instrument

CFG = EvaluationConfig(bootstrap=100)


@pytest.fixture(scope="module")
def builtin(tmp_path_factory):
    """A small built-in dataset (12 clips per style as by default, 16 s: 2 test clips per style), and a cache."""
    from datamodules.config import FeatureConfig, SynthConfig
    from datamodules.synth import build_synthetic

    base = tmp_path_factory.mktemp("controls")
    root = build_synthetic(base / "synth", SynthConfig(clips_per_style=12, seconds=16.0, seed=1), FeatureConfig())
    return root, base / "cache"


@pytest.fixture(scope="module")
def table(builtin):
    rows, inst = controls_table(builtin[0], CFG, builtin[1])
    return {r["control"]: r for r in rows}, inst


def _better(real, other, direction):
    return (real - other) * direction


@pytest.mark.parametrize("metric,direction,against", [
    ("fid_kinetic", -1, ("static", "jitter", "random_walk")),
    ("fid_classifier", -1, ("static", "jitter", "random_walk")),
    ("style_consistency", 1, ("static", "jitter", "random_walk")),
    ("beat_f1", 1, ("static", "jitter", "random_walk", "shifted")),
    ("beat_f1_true", 1, ("static", "jitter", "random_walk", "shifted")),
    ("beat_align", 1, ("static", "jitter", "random_walk", "shifted")),
    ("beat_align_motion", 1, ("static", "jitter", "random_walk", "shifted")),
])
def test_real_beats_every_degenerate_control_by_more_than_twice_the_floor(table, metric, direction, against):
    rows, inst = table
    floor = inst.floors[f"{metric}_floor"]
    assert math.isfinite(floor) and floor >= 0
    for control in against:
        margin = _better(rows["real"][metric], rows[control][metric], direction)
        assert margin > 2 * floor, (metric, control, rows["real"][metric], rows[control][metric], floor)


def test_statues_score_chance_style_no_beats_and_no_speed(table):
    rows, inst = table
    chance = 1 / len(inst.view.class_names)
    for control in ("static", "jitter"):
        assert abs(rows[control]["style_consistency"] - chance) <= 0.1, control
        assert rows[control]["beat_f1"] == 0.0 and rows[control]["beat_align"] == 0.0  # 0, not NaN
    assert rows["static"]["speed_ratio"] == 0.0
    assert rows["real"]["speed_ratio"] == pytest.approx(1.0)
    assert rows["random_walk"]["speed_ratio"] == pytest.approx(1.0, abs=0.15)  # motion, but no dance
    assert rows["random_walk"]["bone_length_error"] > 10 * rows["real"]["bone_length_error"] + 0.1
    # the same n windows in both sets of each FID, for every control
    assert {r["n_fid"] for r in rows.values()} == {float(inst.n_fid)}


def test_controls_are_built_on_the_same_test_music(builtin, table):
    _, inst = table
    real = control_dances("real", inst)
    for name in CONTROLS:
        dances = control_dances(name, inst)
        assert len(dances) == len(real)
        for d, r in zip(dances, real):
            assert d.pixels.shape == r.pixels.shape
            if name != "mismatched":
                assert d.clip == r.clip and (d.beats == r.beats).all()
    shifted = control_dances("shifted", inst)[0].pixels
    assert (shifted[5] == real[0].pixels[3]).all()
    mismatched = control_dances("mismatched", inst)
    assert all(d.clip != r.clip for d, r in zip(mismatched, real))


def test_cli_writes_the_controls_table(builtin, tmp_path, capsys):
    root, cache = builtin
    out = tmp_path / "controls"
    assert main(["evaluate", "--controls", "--data", str(root), "--out", str(out), "--cache", str(cache)]) == 0
    table = pd.read_csv(out / "controls.csv")
    assert list(table["control"]) == list(CONTROLS)
    for metric in METRIC_NAMES:
        assert metric in table.columns, metric
    for floor in ("fid_kinetic_floor", "fid_classifier_floor", "style_consistency_floor", "beat_f1_floor"):
        assert floor in table.columns
    md = (out / "controls.md").read_text()
    assert "| static |" in md and "noise floor" in md
    assert (out / "protocol.json").is_file()


def test_cli_bad_inputs_are_one_line(builtin, tmp_path, capsys):
    assert main(["evaluate", "--controls", "--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("d2m: error:") and err.count("\n") == 1
    assert main(["evaluate", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("d2m: error:") and err.count("\n") == 1


def test_run_without_a_trained_composition_stage_is_one_line(builtin, tmp_path, capsys):
    from omegaconf import OmegaConf

    from common.atomic import write_json
    from experiments.config import load_config

    run = tmp_path / "run"
    run.mkdir()
    cfg = load_config("tiny", [f"data.root={builtin[0]}", "data.source=canonical", f"runs_dir={tmp_path}"])
    OmegaConf.save(cfg, run / "config.yaml")
    write_json(run / "stages.json", {"data": {"root": str(builtin[0])}, "style": {"checkpoint": "x.ckpt"}})
    assert main(["evaluate", str(run)]) == 2
    err = capsys.readouterr().err
    assert "no composition checkpoint" in err and err.count("\n") == 1


def test_instrument_is_built_once_per_dataset_from_the_cache(builtin):
    inst = build_instrument(builtin[0], CFG, builtin[1])
    assert inst.report["loaded_from_cache"]
