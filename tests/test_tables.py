"""Ablation and timing tables are pure functions of run directories."""

import math
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats

from ablations.rebuild import TableSpec, load_spec, rebuild_tables
from ablations.stats import mean_std, paired, welch
from ablations.tables import REFERENCE_ROW, build_tables
from common.atomic import write_json
from common.errors import D2MError


def fake_runs(tmp_path, values, first_seed=0):
    """Run folders holding only what tables read: metrics.json, timings.json, stages.json."""
    entries = []
    for cell, per_seed in values.items():
        for seed, v in enumerate(per_seed, start=first_seed):
            folder = tmp_path / "runs" / f"{cell}-s{seed}"
            write_json(folder / "metrics.json", {
                "evaluation/fid_kinetic": v, "evaluation/beat_f1": v / 10, "evaluation/fid_kinetic_floor": 0.5,
                "reference/fid_kinetic": 1.0, "reference/beat_f1": 0.9,
                "reference/controls/static/fid_kinetic": 70.0, "reference/controls/static/beat_f1": 0.0,
                "reference/controls/random_walk/fid_kinetic": 200.0 + seed,
                "reference/controls/random_walk/beat_f1": 0.2,
                "reference/controls/jitter/beat_f1": 0.0})
            stages = {"style": {"key": f"sty{seed}"}, "composition": {"key": f"{cell}{seed}"}}
            write_json(folder / "stages.json", stages)
            write_json(folder / "timings.json", {
                "style": {"device": "cpu", "ms_per_step": 10.0, "samples_per_s": 100.0, "steps": 5, "fit_seconds": 1.0},
                "composition": {"device": "cpu", "ms_per_step": 20.0 + seed, "samples_per_s": 50.0, "steps": 5,
                                "fit_seconds": 2.0},
            })
            entries.append({"cell": cell, "seed": seed, "device": "cpu", "run_dir": str(folder), "status": "done"})
    return entries


def test_ablation_table_means_differences_and_reference(tmp_path):
    entries = fake_runs(tmp_path, {"full": [10.0, 12.0, 14.0], "ablated": [20.0, 21.0, 25.0]})
    entries.append({"cell": "broken", "seed": 0, "device": "cpu", "run_dir": str(tmp_path / "x"), "status": "failed"})
    written = build_tables(tmp_path / "out", entries, baseline="full", title="t")
    table = pd.read_csv(written["csv"])
    assert list(table["cell"]) == ["full", "ablated", REFERENCE_ROW, "control: static", "control: random walk"]
    full, ablated, ref = table.iloc[0], table.iloc[1], table.iloc[2]
    assert full["evaluation/fid_kinetic_mean"] == pytest.approx(12.0)
    assert full["evaluation/fid_kinetic_std"] == pytest.approx(2.0)
    assert ablated["evaluation/fid_kinetic_diff"] == pytest.approx(10.0)
    # the same seeds on both sides: seed-by-seed differences 10, 9, 11 (mean 10, sd 1, t(2) = 4.303)
    expected_p = stats.ttest_rel([20.0, 21.0, 25.0], [10.0, 12.0, 14.0]).pvalue
    assert ablated["evaluation/fid_kinetic_p"] == pytest.approx(expected_p)
    assert ablated["evaluation/fid_kinetic_ci_low"] == pytest.approx(10.0 - 4.3027 / 3**0.5, abs=1e-3)
    assert ablated["evaluation/fid_kinetic_ci_high"] == pytest.approx(10.0 + 4.3027 / 3**0.5, abs=1e-3)
    assert ablated["comparison"] == "paired"
    assert ref["evaluation/fid_kinetic_mean"] == pytest.approx(1.0) and ref["n_seeds"] == 0
    static, walk = table.iloc[3], table.iloc[4]
    assert static["evaluation/fid_kinetic_mean"] == 70.0 and static["evaluation/beat_f1_mean"] == 0.0
    assert walk["evaluation/fid_kinetic_mean"] == pytest.approx(201.0)  # mean over the runs
    assert "evaluation/controls/static/fid_kinetic_mean" not in table.columns
    md = written["md"].read_text()
    assert "| ablated | 3 |" in md and "Δ 10" in md and "p=" in md
    assert "| control: static | - | 70 |" in md and "FID kinetic floor" in md
    assert r"\begin{tabular}" in written["tex"].read_text()
    assert written["png"].stat().st_size > 1000


def test_timing_counts_shared_stages_once(tmp_path):
    entries = fake_runs(tmp_path, {"full": [1.0, 2.0], "ablated": [3.0, 4.0]})
    written = build_tables(tmp_path / "out", entries, baseline="full", title="t")
    timing = pd.read_csv(written["timing_csv"]).set_index("stage")
    assert timing.loc["style", "runs"] == 2  # one per seed, shared by both cells
    assert timing.loc["composition", "runs"] == 4
    assert timing.loc["composition", "ms_per_step"] == pytest.approx(20.5)


def finish(entries, stages=("data", "style", "decomposition", "composition", "evaluation")):
    """done.json and config.yaml as a run directory that went through `stages` has them."""
    for e in entries:
        folder = Path(e["run_dir"])
        write_json(folder / "done.json", {"stages": list(stages), "evaluated": "evaluation" in stages})
        (folder / "config.yaml").write_text(f"name: {e['cell']}\nseed: {e['seed']}\ntrainer:\n  accelerator: cpu\n")


def spec_of(entries):
    runs = [{k: e[k] for k in ("cell", "seed", "device", "run_dir")} for e in entries]
    return TableSpec(name="t", baseline="full", runs=runs)


def test_rebuild_counts_only_runs_whose_done_json_went_far_enough(tmp_path):
    entries = fake_runs(tmp_path, {"full": [1.0, 2.0], "b": [3.0, 5.0, 100.0]})
    finish(entries[:4])
    finish(entries[4:], stages=("data", "style"))  # b seed 2 stopped after the style extractor
    table = pd.read_csv(rebuild_tables(spec_of(entries), tmp_path / "out")["csv"]).set_index("cell")
    assert table.loc["b", "n_seeds"] == 2 and table.loc["b", "evaluation/fid_kinetic_mean"] == pytest.approx(4.0)
    with pytest.raises(D2MError, match="none of the 1 runs"):
        rebuild_tables(spec_of([entries[0] | {"run_dir": str(tmp_path / "nothing")}]), tmp_path / "x")


def test_results_folder_and_runs_group_give_the_same_bytes(tmp_path):
    entries = fake_runs(tmp_path, {"full": [1.0, 2.0], "b": [3.0, 5.0]})
    finish(entries)
    first = rebuild_tables(spec_of(entries), tmp_path / "out")
    again, out = load_spec(tmp_path / "out")
    grouped, _ = load_spec(tmp_path / "runs")
    assert out == tmp_path / "out" and grouped.baseline == "full" and grouped.name == "runs"
    assert [r["cell"] for r in grouped.runs] == ["full", "full", "b", "b"]
    for spec, folder in ((again, tmp_path / "again"), (grouped, tmp_path / "grouped")):
        written = rebuild_tables(spec, folder)
        for kind in ("csv", "timing_csv"):
            assert written[kind].read_bytes() == first[kind].read_bytes(), (folder, kind)
    with pytest.raises(D2MError, match="neither a results folder"):
        load_spec(tmp_path / "runs" / "full-s0")


def test_paired_differences_leave_out_the_luck_two_cells_share_through_a_seed():
    # seed 1 is good in both cells: as two independent samples the shift of +1 drowns in the seeds'
    # spread, seed by seed it is the same +1 every time
    base = {0: 10.0, 1: 30.0, 2: 12.0}
    cell = {0: 11.0, 1: 31.2, 2: 12.9}
    p = paired(cell, base)
    w = welch(list(cell.values()), list(base.values()))
    assert p["test"] == "paired" and p["diff"] == pytest.approx(w["diff"]) == pytest.approx(1.0333, abs=1e-3)
    assert p["p"] == pytest.approx(stats.ttest_rel([11.0, 31.2, 12.9], [10.0, 30.0, 12.0]).pvalue)
    assert p["p"] < 0.05 < 0.9 < w["p"]
    assert p["ci_low"] > 0 > w["ci_low"]
    # seeds that do not match, or one seed in common, fall back to Welch over all the values
    other = paired({3: 11.0, 4: 31.2, 5: 12.9}, base)
    assert other["test"] == "welch" and other["p"] == pytest.approx(w["p"])
    assert paired({0: 11.0, 1: 31.2, 7: 5.0}, base)["test"] == "welch"
    assert paired({0: 2.0}, {0: 1.0})["test"] == "welch"


def test_a_table_of_unmatched_seeds_says_it_used_welch(tmp_path):
    entries = fake_runs(tmp_path, {"full": [10.0, 12.0, 14.0]})
    entries += fake_runs(tmp_path / "b", {"ablated": [20.0, 21.0, 25.0]}, first_seed=5)
    written = build_tables(tmp_path / "out", entries, baseline="full", title="t")
    ablated = pd.read_csv(written["csv"]).iloc[1]
    assert ablated["comparison"] == "welch"
    expected_p = stats.ttest_ind([20.0, 21.0, 25.0], [10.0, 12.0, 14.0], equal_var=False).pvalue
    assert ablated["evaluation/fid_kinetic_p"] == pytest.approx(expected_p)
    assert "Welch" in written["md"].read_text().splitlines()[0]


def test_welch_with_too_few_seeds_gives_difference_only():
    w = welch([2.0], [1.0])
    assert w["diff"] == 1.0 and math.isnan(w["p"]) and math.isnan(w["ci_low"])
    assert mean_std([3.0]) == (3.0, pytest.approx(float("nan"), nan_ok=True))
    assert welch([1.0, 1.0], [1.0, 1.0])["p"] == 1.0


def test_protocol_settings_are_recorded_not_averaged_into_the_table(tmp_path):
    entries = fake_runs(tmp_path, {"full": [1.0, 2.0], "b": [3.0, 5.0]})
    for e in entries:  # what evaluation writes beside the scores: how they were measured
        metrics = Path(e["run_dir"]) / "metrics.json"
        record = pd.read_json(metrics, typ="series").to_dict()
        write_json(metrics, {**record, "evaluation/protocol/fid_n_per_set": 270.0,
                             "reference/protocol/fps": 15.0, "evaluation/protocol/direction/fid_kinetic": -1.0})
    table = pd.read_csv(build_tables(tmp_path / "out", entries, baseline="full", title="t")["csv"])
    assert not [c for c in table.columns if "protocol" in c]
    assert table.set_index("cell").loc["b", "evaluation/fid_kinetic_mean"] == pytest.approx(4.0)
