"""The dance-style classifier: trained once per dataset and config, then loaded from the cache."""

import json
import shutil

import numpy as np
import pytest
import torch

from common.errors import D2MError
from evaluation import dance_classifier as dc
from evaluation.config import DanceClassifierConfig
from lightning_modules.config import OptimConfig

pytest.importorskip("datamodules.synth", reason="datamodules.synth (builds the tiny_dataset fixture) is missing")
pytest.importorskip("datamodules.dataset", reason="datamodules.dataset (the canonical reader) is missing")


def tiny_cfg(**kw) -> DanceClassifierConfig:
    optim = OptimConfig(lr=3e-3, betas=[0.9, 0.999], grad_clip=0.0, batch_size=16, max_epochs=3)
    return DanceClassifierConfig(**{"hidden": 12, "feature_dim": 6, "optim": optim, **kw})


def test_classifier_trains_once_then_loads_from_the_cache(tiny_dataset, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    model, report = dc.get_dance_classifier(tiny_dataset, tiny_cfg(), cache)
    assert report["loaded_from_cache"] is False
    assert 0.0 <= report["test_accuracy"] <= 1.0 and report["n_test_windows"] > 0
    assert report["n_train_windows"] > 0 and len(report["confusion"]) == len(report["class_names"])
    entry = cache / f"dance_classifier-{report['key'][:16]}"
    assert (entry / "model.pt").is_file()
    assert json.loads((entry / "report.json").read_text())["test_accuracy"] == report["test_accuracy"]

    def no_training(*args, **kwargs):
        raise AssertionError("the cached classifier was trained again")

    monkeypatch.setattr(dc, "_train", no_training)
    again, report2 = dc.get_dance_classifier(tiny_dataset, tiny_cfg(), cache)
    assert report2["loaded_from_cache"] is True
    assert report2["test_accuracy"] == report["test_accuracy"]
    x = torch.randn(5, model.window, 28)
    torch.testing.assert_close(again.features(x), model.features(x))
    with pytest.raises(AssertionError, match="trained again"):  # another config is another classifier
        dc.get_dance_classifier(tiny_dataset, tiny_cfg(hidden=10), cache)


def test_features_are_penultimate_and_any_length_is_read(tiny_dataset, tmp_path):
    cfg = tiny_cfg()
    model, _ = dc.get_dance_classifier(tiny_dataset, cfg, tmp_path / "cache")
    x = torch.randn(4, model.window, 28)
    f = model.features(x)
    assert f.shape == (4, cfg.feature_dim)
    torch.testing.assert_close(model(x), model.head(f))
    windows = [np.random.default_rng(i).normal(size=(n, 28)) for i, n in enumerate([model.window, 20, model.window])]
    feats, pred = model.embed(windows)
    assert feats.shape == (3, cfg.feature_dim) and pred.shape == (3,)
    np.testing.assert_allclose(feats[1], model.features(windows[1][None]).detach().numpy()[0], rtol=1e-5)


def test_cache_key_follows_dataset_config_and_seed(tiny_dataset, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("dataset.json", "clips.csv"):
        shutil.copy(tiny_dataset / name, copy / name)
    base = dc.cache_key(tiny_dataset, tiny_cfg())
    assert dc.cache_key(copy, tiny_cfg()) == base  # contents, not the path
    assert dc.cache_key(tiny_dataset, tiny_cfg(feature_dim=7)) != base
    assert dc.cache_key(tiny_dataset, tiny_cfg(), seed=1) != base
    meta = json.loads((copy / "dataset.json").read_text())
    meta["name"] = str(meta.get("name", "")) + "-changed"
    (copy / "dataset.json").write_text(json.dumps(meta))
    assert dc.cache_key(copy, tiny_cfg()) != base


def test_window_longer_than_every_clip_is_a_clear_error(tiny_dataset, tmp_path):
    with pytest.raises(D2MError, match="window_units"):
        dc.get_dance_classifier(tiny_dataset, tiny_cfg(window_units=100), tmp_path / "cache")


def test_centred_classifier_ignores_where_the_dancer_stands():
    rng = np.random.default_rng(0)
    mean, std = rng.uniform(100, 300, 28).astype(np.float32), rng.uniform(5, 40, 28).astype(np.float32)
    net = dc.DanceStyleClassifier(3, hidden=8, feature_dim=4, pose_mean=mean, pose_std=std, inputs="pose")
    px = rng.uniform(100, 300, size=(2, 40, 14, 2)).astype(np.float32)
    moved = px + np.array([37.0, -12.0], dtype=np.float32)
    norm = lambda p: torch.from_numpy((p.reshape(2, 40, 28) - mean) / std)  # noqa: E731
    torch.testing.assert_close(net.features(norm(moved)), net.features(norm(px)), atol=1e-4, rtol=1e-4)
    net.center = False
    assert not torch.allclose(net.features(norm(moved)), net.features(norm(px)), atol=1e-4)


def test_velocity_classifier_sees_every_statue_alike_and_motion_apart():
    rng = np.random.default_rng(1)
    net = dc.DanceStyleClassifier(3, hidden=8, feature_dim=4)  # default inputs: velocity
    a, b = (np.repeat(rng.normal(size=(1, 1, 28)), 40, axis=1).astype(np.float32) for _ in range(2))
    torch.testing.assert_close(net.features(torch.from_numpy(a)), net.features(torch.from_numpy(b)))
    moving = a + np.cumsum(rng.normal(0, 0.1, size=a.shape), axis=1).astype(np.float32)
    assert not torch.allclose(net.features(torch.from_numpy(moving)), net.features(torch.from_numpy(a)), atol=1e-4)
    both = dc.DanceStyleClassifier(3, hidden=8, feature_dim=4, inputs="pose+velocity")
    assert both.gru.input_size == 56
    with pytest.raises(D2MError, match="inputs"):
        dc.DanceStyleClassifier(3, inputs="posture")
