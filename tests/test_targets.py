"""The demo's learning targets: each bound read from the right metric, missing numbers never met."""

import math

from ablations.targets import TARGETS, check_targets, targets_markdown

GOOD = {
    "decomposition/test/recon_ratio": 0.35, "decomposition/test/speed_ratio": 0.9,
    "evaluation/speed_ratio": 1.1, "evaluation/bone_length_error": 0.05, "evaluation/style_consistency": 0.8,
    "evaluation/fid_kinetic": 20.0, "evaluation/fid_kinetic_floor": 5.0,
    "reference/controls/static/fid_kinetic": 80.0, "reference/controls/random_walk/fid_kinetic": 1000.0,
    "evaluation/beat_f1": 0.6, "reference/beat_f1": 0.9, "evaluation/beat_speed_ratio": 0.4,
    "evaluation/seam_ratio": 1.5, "evaluation/multimodality": 3.0, "evaluation/diversity_kinetic": 5.0,
}


def by_name(rows):
    return {r["target"]: r for r in rows}


def test_a_run_that_meets_every_bound_meets_every_target():
    rows = check_targets(GOOD, minutes=9.5)
    assert len(rows) == len(TARGETS) + 1
    assert all(r["met"] for r in rows), [r for r in rows if not r["met"]]
    fid = by_name(rows)["kinetic FID below static and random walk, in noise floors"]
    assert fid["value"] == (80.0 - 20.0) / 5.0  # the nearer control (static) counts
    assert math.isclose(by_name(rows)["beat F1 / real test dances' beat F1"]["value"], 0.6 / 0.9)


def test_each_bound_fails_on_its_own_side():
    cases = {
        "decomposition/test/recon_ratio": 0.41, "decomposition/test/speed_ratio": 1.25, "evaluation/speed_ratio": 0.6,
        "evaluation/bone_length_error": 0.11, "evaluation/style_consistency": 0.69, "evaluation/fid_kinetic": 75.0,
        "evaluation/beat_f1": 0.5, "evaluation/beat_speed_ratio": 0.6, "evaluation/seam_ratio": 2.1,
        "evaluation/multimodality": 2.4,
    }
    for key, bad in cases.items():
        rows = check_targets({**GOOD, key: bad})
        assert sum(not r["met"] for r in rows) == 1, key


def test_missing_numbers_are_not_met_and_the_budget_row_reads_minutes():
    rows = check_targets({}, minutes=10.5)
    assert not any(r["met"] for r in rows)
    assert rows[-1]["value"] == 10.5
    text = targets_markdown(rows, "demo")
    assert text.startswith(f"demo: 0 of {len(rows)} targets met.")
    assert "| VAE test reconstruction / first-pose baseline | <= 0.4 | - | no |" in text
