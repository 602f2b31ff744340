"""Scoring generated and real dances on the tiny dataset's test music."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from datamodules.errors import D2MError
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


def test_reference_row_has_every_metric(reference):
    assert list(reference) == [*METRIC_NAMES, *EXTRA_NAMES]
    assert all(isinstance(v, float) for v in reference.values())
    assert math.isnan(reference["multimodality"])  # one real dance per piece of music
    for name in ("style_consistency", "fid", "diversity", "beat_coverage", "beat_hit_rate", "beat_align"):
        assert math.isfinite(reference[name]), name
    assert 0 <= reference["style_consistency"] <= 1 and reference["fid"] >= 0
    assert reference["n_clips"] >= 3 and reference["n_dances"] == reference["n_clips"]


def test_real_dances_returned_as_generated_score_like_the_reference(tiny_dataset, cache, reference):
    one = dataclasses.replace(CFG, samples_per_clip=1)
    got = evaluate_generator(real_dance_generator(tiny_dataset), tiny_dataset, one, cache, seed=0)
    assert got == pytest.approx(reference, rel=1e-6, abs=1e-9, nan_ok=True)
    twice = evaluate_generator(real_dance_generator(tiny_dataset), tiny_dataset, CFG, cache, seed=0)
    assert twice["multimodality"] == pytest.approx(0.0, abs=1e-9)  # identical samples
    assert twice["n_dances"] == CFG.samples_per_clip * reference["n_clips"]
    for name in ("style_consistency", "diversity", "beat_coverage", "beat_hit_rate", "beat_align"):
        assert twice[name] == pytest.approx(reference[name], rel=1e-6, abs=1e-9), name


def test_real_dances_hit_the_beats_better_than_noise(tiny_dataset, cache, reference):
    noise = evaluate_generator(noise_generator, tiny_dataset, CFG, cache, seed=0)
    assert reference["beat_align"] > noise["beat_align"]
    assert noise["multimodality"] > 0


def test_generation_is_seeded_and_clips_are_limited(tiny_dataset, cache):
    cfg = dataclasses.replace(CFG, max_clips=2)
    a = evaluate_generator(noise_generator, tiny_dataset, cfg, cache, seed=3)
    b = evaluate_generator(noise_generator, tiny_dataset, cfg, cache, seed=3)
    c = evaluate_generator(noise_generator, tiny_dataset, cfg, cache, seed=4)
    assert a == pytest.approx(b, nan_ok=True)
    assert a["fid"] != c["fid"]
    assert a["n_clips"] == 2 and a["n_dances"] == 2 * cfg.samples_per_clip
    styles = {c.style for c in select_clips(open_dataset(tiny_dataset).clips("test"), 2)}
    assert len(styles) == 2  # round-robin over styles


def test_short_dances_are_scored_and_bad_ones_are_refused(tiny_dataset, cache):
    def short(features, samples, generator):
        return noise_generator(features, samples, generator)[:, :20]  # shorter than a classifier window

    got = evaluate_generator(short, tiny_dataset, CFG, cache, seed=0)
    assert got["n_windows"] == got["n_dances"] and math.isfinite(got["fid"])

    def wrong(features, samples, generator):
        return torch.zeros(samples, features.shape[0], 14)

    with pytest.raises(D2MError, match="expected"):
        evaluate_generator(wrong, tiny_dataset, CFG, cache, seed=0)


def test_config_may_come_as_a_plain_dict(tiny_dataset, cache, reference):
    as_dict = dataclasses.asdict(CFG)
    assert reference_metrics(tiny_dataset, as_dict, cache) == pytest.approx(reference, nan_ok=True)
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
    got = evaluate_composition(module, tiny_dataset, cfg, cache, seed=0)
    assert got["n_dances"] == 2 * cfg.samples_per_clip
    assert math.isfinite(got["fid"]) and math.isfinite(got["beat_align"])
    assert got == pytest.approx(evaluate_composition(module, tiny_dataset, cfg, cache, seed=0), nan_ok=True)


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
