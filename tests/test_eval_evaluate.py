"""Scoring generated and real dances on the tiny dataset's test music."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from common.errors import D2MError
from evaluation.config import DanceClassifierConfig, EvaluationConfig
from evaluation.dance_classifier import open_dataset
from evaluation.evaluate import (
    EXTRA_NAMES,
    METRIC_NAMES,
    evaluate_composition,
    evaluate_generator,
    reference_metrics,
    select_clips,
)
from lightning_modules.config import OptimConfig

pytest.importorskip("datamodules.synth", reason="datamodules.synth (builds the tiny_dataset fixture) is missing")
pytest.importorskip("datamodules.dataset", reason="datamodules.dataset (the canonical reader) is missing")

CFG = EvaluationConfig(
    samples_per_clip=2, max_clips=0,
    classifier=DanceClassifierConfig(hidden=12, feature_dim=6, optim=OptimConfig(
        lr=3e-3, betas=[0.9, 0.999], grad_clip=0.0, batch_size=16, max_epochs=3)),
)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("eval-cache")


@pytest.fixture(scope="module")
def reference(tiny_dataset, cache):
    return reference_metrics(tiny_dataset, CFG, cache)


def real_dance_generator(root):
    """A 'generator' that returns the real test dance under the given music, repeated."""
    view = open_dataset(root)
    by_music = {}
    for c in view.clips("test"):
        key = np.round((c.features[:8] - view.feature_mean) / view.feature_std, 3).tobytes()
        by_music[key] = view.normalise(c.poses)

    def generate(features, samples, generator):
        dance = by_music[np.round(features[:8].numpy(), 3).tobytes()][: len(features)]
        return torch.from_numpy(np.repeat(dance[None], samples, axis=0))

    return generate


def noise_generator(features, samples, generator):
    steps = torch.randn((samples, features.shape[0], 28), generator=generator) * 0.05
    return torch.cumsum(steps, dim=1)


def _own(row):
    """A row without the controls that come with the reference."""
    return {k: v for k, v in row.items() if not k.startswith("controls/")}


def test_reference_row_has_every_metric_floor_and_the_protocol(reference):
    assert set(METRIC_NAMES) | set(EXTRA_NAMES) <= set(reference)
    assert all(isinstance(v, float) for v in reference.values())
    assert math.isnan(reference["multimodality"])  # one real dance per piece of music
    for name in ("fid_kinetic", "fid_classifier", "style_consistency", "diversity_kinetic", "beat_f1", "beat_align",
                 "beat_align_motion", "speed_ratio", "beat_f1_true", "beat_align_true"):
        assert math.isfinite(reference[name]), name
    for fid in ("fid_kinetic", "fid_classifier"):
        assert 0 <= reference[f"{fid}_ci_low"] <= reference[fid] <= reference[f"{fid}_ci_high"]
        assert 0 <= reference[f"{fid}_floor_low"] <= reference[f"{fid}_floor"] <= reference[f"{fid}_floor_high"]
    assert reference["speed_ratio"] == pytest.approx(1.0)
    assert reference["bone_length_error"] < 0.01  # the real dancer against itself
    assert reference["n_clips"] >= 3 and reference["n_dances"] == reference["n_clips"]
    # the same n windows in both sets, recorded with the rest of the protocol
    assert reference["n_fid"] == reference["protocol/fid_n_per_set"] >= 2
    assert reference["protocol/fps"] == 15.0 and reference["protocol/beats_true"] == 1.0
    assert reference["protocol/direction/fid_kinetic"] == -1.0
    for control in ("static", "jitter", "random_walk", "reversed", "shifted", "mismatched"):
        assert f"controls/{control}/beat_f1" in reference
    assert reference["controls/static/beat_f1"] == 0.0 and reference["controls/static/speed_ratio"] == 0.0


def test_real_dances_returned_as_generated_score_like_the_reference(tiny_dataset, cache, reference):
    one = dataclasses.replace(CFG, samples_per_clip=1)
    got = evaluate_generator(real_dance_generator(tiny_dataset), tiny_dataset, one, cache, seed=0)
    assert got == pytest.approx(_own(reference), rel=1e-5, abs=1e-6, nan_ok=True)
    twice = evaluate_generator(real_dance_generator(tiny_dataset), tiny_dataset, CFG, cache, seed=0)
    assert twice["multimodality"] == pytest.approx(0.0, abs=1e-5)  # identical samples (rounding only)
    assert twice["n_dances"] == CFG.samples_per_clip * reference["n_clips"]
    for name in ("style_consistency", "diversity_kinetic", "beat_f1", "beat_align", "beat_align_motion"):
        assert twice[name] == pytest.approx(reference[name], rel=1e-5, abs=1e-6), name


def test_real_dances_hit_the_beats_better_than_noise(tiny_dataset, cache, reference):
    noise = evaluate_generator(noise_generator, tiny_dataset, CFG, cache, seed=0)
    assert reference["beat_f1"] > noise["beat_f1"] and reference["beat_align"] > noise["beat_align"]
    assert noise["multimodality"] > 0


def test_generation_is_seeded_and_clips_are_limited(tiny_dataset, cache):
    cfg = dataclasses.replace(CFG, max_clips=2)
    a = evaluate_generator(noise_generator, tiny_dataset, cfg, cache, seed=3)
    b = evaluate_generator(noise_generator, tiny_dataset, cfg, cache, seed=3)
    c = evaluate_generator(noise_generator, tiny_dataset, cfg, cache, seed=4)
    assert a == pytest.approx(b, nan_ok=True)
    assert a["fid_kinetic"] != c["fid_kinetic"]
    assert a["n_clips"] == 2 and a["n_dances"] == 2 * cfg.samples_per_clip
    styles = {c.style for c in select_clips(open_dataset(tiny_dataset).clips("test"), 2)}
    assert len(styles) == 2  # round-robin over styles


def test_short_dances_are_scored_and_bad_ones_are_refused(tiny_dataset, cache):
    def short(features, samples, generator):
        return noise_generator(features, samples, generator)[:, :20]  # shorter than a classifier window

    got = evaluate_generator(short, tiny_dataset, CFG, cache, seed=0)
    assert got["n_windows"] == got["n_dances"] and math.isfinite(got["fid_kinetic"])

    def wrong(features, samples, generator):
        return torch.zeros(samples, features.shape[0], 14)

    with pytest.raises(D2MError, match="expected"):
        evaluate_generator(wrong, tiny_dataset, CFG, cache, seed=0)


def test_config_may_come_as_a_plain_dict(tiny_dataset, cache, reference):
    as_dict = dataclasses.asdict(CFG)
    assert reference_metrics(tiny_dataset, as_dict, cache) == pytest.approx(reference, nan_ok=True)
    assert set(_own(reference_metrics(tiny_dataset, {**as_dict, "controls": False}, cache))) == set(_own(reference))
    with pytest.raises(D2MError, match="unknown"):
        reference_metrics(tiny_dataset, {**as_dict, "samples": 3}, cache)


def test_evaluate_composition_runs_an_untrained_tiny_model(tiny_dataset, cache):
    from lightning_modules.composition_module import CompositionModule

    view = open_dataset(tiny_dataset)
    module = CompositionModule(
        {"dance_dim": 8, "hidden": 16, "noise_dim": 4, "music_hidden": [8, 8], "disc_hidden": [16, 8, 8, 8],
         "audio_disc_hidden": 8, "regressor_hidden": [8, 8, 8]},
        decomposition_config={"init_dim": 4, "init_hidden": 8, "movement_dim": 8, "hidden": 16},
        style_config={"hidden": 8, "head_hidden": 8, "style_dim": 8},
        feature_dim=len(view.feature_mean), class_names=view.class_names,
        pose_mean=view.pose_mean.tolist(), pose_std=view.pose_std.tolist(),
        feature_mean=view.feature_mean.tolist(), feature_std=view.feature_std.tolist(),
    )
    cfg = dataclasses.replace(CFG, max_clips=2)
    got = evaluate_composition(module.model, tiny_dataset, cfg, cache, seed=0)
    assert got["n_dances"] == 2 * cfg.samples_per_clip
    assert math.isfinite(got["fid_kinetic"]) and math.isfinite(got["beat_align"])
    assert math.isfinite(got["seam_ratio"]) and got["seam_ratio"] > 0
    assert got == pytest.approx(evaluate_composition(module.model, tiny_dataset, cfg, cache, seed=0), nan_ok=True)


def test_clip_shorter_than_a_unit_is_skipped_and_counted(tiny_dataset, cache, tmp_path):
    import shutil

    copy = tmp_path / "data"
    shutil.copytree(tiny_dataset, copy)
    victim = select_clips(open_dataset(copy).clips("test"), 0)[0].clip_id
    path = copy / "clips" / f"{victim}.npz"
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(poses=arrays["poses"][:20], features=arrays["features"][:20],
                  beats=arrays["beats"][arrays["beats"] < 20])
    np.savez_compressed(path, **arrays)
    got = evaluate_generator(noise_generator, copy, CFG, cache, seed=0)
    ref = reference_metrics(copy, CFG, cache)
    for row in (got, ref):
        assert row["n_clips_skipped"] == 1 and math.isfinite(row["beat_align"])


def test_fid_samples_larger_than_the_reference_can_give_is_one_clear_line(tiny_dataset, cache, reference):
    n = int(reference["n_fid"])
    exact = reference_metrics(tiny_dataset, dataclasses.replace(CFG, fid_samples=n, controls=False), cache)
    assert exact["fid_kinetic"] == pytest.approx(reference["fid_kinetic"])
    with pytest.raises(D2MError, match=r"fid_samples=\d+ is more than .* training windows") as err:
        reference_metrics(tiny_dataset, dataclasses.replace(CFG, fid_samples=n + 1000), cache)
    assert "\n" not in str(err.value)


def test_dataset_without_test_clips_is_one_clear_line(tiny_dataset, cache, tmp_path):
    import shutil

    import pandas as pd

    copy = tmp_path / "data"
    shutil.copytree(tiny_dataset, copy)
    clips = pd.read_csv(copy / "clips.csv")
    clips.loc[clips["split"] == "test", "split"] = "val"
    clips.to_csv(copy / "clips.csv", index=False)
    with pytest.raises(D2MError, match="test split holds no clips"):
        reference_metrics(copy, CFG, cache)


def test_beat_warp_moves_a_late_dance_back_onto_the_beats(tiny_dataset, cache):
    real = real_dance_generator(tiny_dataset)

    def late(features, samples, generator):  # the real dance, every frame 2 frames late
        dance = real(features, samples, generator)
        return torch.cat([dance[:, :1].expand(-1, 2, -1), dance[:, :-2]], dim=1)

    plain = evaluate_generator(late, tiny_dataset, CFG, cache, seed=0)
    warped = evaluate_generator(late, tiny_dataset, dataclasses.replace(CFG, beat_warp=True), cache, seed=0)
    assert plain["protocol/beat_warp"] == 0.0 and warped["protocol/beat_warp"] == 1.0
    assert warped["beat_f1"] > plain["beat_f1"] + 0.2
    assert warped["beat_align"] > plain["beat_align"] + 0.1
    assert warped["seam_ratio"] == plain["seam_ratio"]  # seams measured where the units meet, before warping
