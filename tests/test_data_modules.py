"""The LightningDataModules: batch contract, normalisation, jitter, style filter, seeding, factory."""

import shutil
from dataclasses import asdict

import numpy as np
import pytest
import torch

import datamodules
from common.errors import D2MError
from datamodules.config import DataConfig, FeatureConfig, SynthConfig
from datamodules.dataset import CanonicalDataset
from datamodules.motion import kinematic_beats
from datamodules.skeleton import flatten


def cfg_for(root, **kw) -> DataConfig:
    return DataConfig(root=str(root), source="canonical", **kw)


def first_batch(dm, split="train"):
    dm.setup({"train": "fit", "val": "validate", "test": "test"}[split])
    loader = {"train": dm.train_dataloader, "val": dm.val_dataloader, "test": dm.test_dataloader}[split]()
    return next(iter(loader))


def test_exports():
    for name in ("build_datamodule", "ensure_dataset", "StyleWindowDataModule", "UnitDataModule",
                 "SequenceDataModule", "D2MError"):
        assert hasattr(datamodules, name)


def test_style_windows(tiny_dataset):
    dm = datamodules.build_datamodule("style", cfg_for(tiny_dataset), root=tiny_dataset, batch_size=8, seed=0,
                                      window=30)
    assert dm.class_names == ["zumba", "ballet", "hiphop"] and dm.feature_dim == 28
    assert dm.feature_spec == asdict(FeatureConfig())
    for arr, n in ((dm.pose_mean, 28), (dm.pose_std, 28), (dm.feature_mean, 28), (dm.feature_std, 28)):
        assert arr.dtype == np.float32 and arr.shape == (n,)
    batch = first_batch(dm)
    assert batch["features"].shape == (8, 30, 28) and batch["features"].dtype == torch.float32
    assert batch["label"].shape == (8,) and batch["label"].dtype == torch.int64
    train = dm.split_dataset("train")
    every = torch.cat([train[i]["features"] for i in range(0, len(train), 6)])
    assert every.mean().abs() < 0.3 and 0.6 < every.std() < 1.4  # normalised with training statistics
    # the style extractor always sees every style, whatever data.styles says
    dm_f = datamodules.build_datamodule("style", cfg_for(tiny_dataset, styles=["ballet"]), root=tiny_dataset)
    dm_f.setup("test")
    labels = {int(dm_f.split_dataset("test")[i]["label"]) for i in range(len(dm_f.split_dataset("test")))}
    assert labels == {0, 1, 2}


def test_unit_pairs_are_jittered_copies(tiny_dataset):
    dm = datamodules.build_datamodule("units", cfg_for(tiny_dataset), root=tiny_dataset, batch_size=16,
                                      seed=0)
    batch = first_batch(dm)
    assert batch["pose_a"].shape == (16, 32, 28) and batch["pose_b"].dtype == torch.float32
    assert batch["label"].dtype == torch.int64
    std = torch.from_numpy(dm.pose_std)
    shift = ((batch["pose_a"] - batch["pose_b"]) * std).reshape(16, 32, 14, 2)
    # one (x, y) shift per copy: the same for every joint and frame, within +-2 jitter
    assert torch.allclose(shift, shift[:, :1, :1].expand_as(shift), atol=1e-2)
    assert shift[..., 0].abs().max() <= 100.0 + 1e-3 and shift[..., 1].abs().max() <= 40.0 + 1e-3
    assert shift[..., 0].abs().max() > 5.0
    train, val = dm.split_dataset("train"), dm.split_dataset("val")
    assert not torch.equal(train[0]["pose_a"], train[0]["pose_a"])  # fresh offsets on every draw
    assert torch.equal(val[0]["pose_a"], val[0]["pose_a"])  # fixed offsets for validation
    # without jitter the copies coincide and un-normalise to the clip's pixels
    still = datamodules.build_datamodule("units", cfg_for(tiny_dataset, jitter_x=0.0, jitter_y=0.0),
                                         root=tiny_dataset, batch_size=4, seed=0)
    still.setup("test")
    item = still.split_dataset("test")[0]
    assert torch.equal(item["pose_a"], item["pose_b"])
    ds = CanonicalDataset(tiny_dataset)
    first = ds.load_clip(ds.clip_ids("test")[0])
    pixels = item["pose_a"].numpy() * still.pose_std + still.pose_mean
    assert np.allclose(pixels, flatten(first.poses[:32]), atol=1e-2)


def test_scale_jitter_scales_both_copies_alike_about_the_first_pose_in_training_only(tiny_dataset):
    cfg = cfg_for(tiny_dataset, jitter_x=0.0, jitter_y=0.0, scale_jitter=0.2)
    dm = datamodules.build_datamodule("units", cfg, root=tiny_dataset, batch_size=4, seed=0)
    dm.setup("fit")
    train = dm.split_dataset("train")
    raw = (train.bank[int(train.index[0, 0])]).reshape(32, 14, 2)  # the unit in pixels, unscaled
    centre = raw[0].mean(dim=0)
    factors = []
    for _ in range(40):
        item = train[0]
        assert torch.equal(item["pose_a"], item["pose_b"])  # one factor for both copies
        pixels = (item["pose_a"] * train.std + train.mean).reshape(32, 14, 2)
        factor = float((pixels - centre).norm() / (raw - centre).norm())
        # exactly the unit scaled about its first pose's centre by that factor
        assert torch.allclose(pixels, centre + (raw - centre) * factor, atol=1e-2)
        factors.append(factor)
    assert 0.8 - 1e-4 <= min(factors) < 0.9 and 1.1 < max(factors) <= 1.2 + 1e-4
    plain = datamodules.build_datamodule("units", cfg_for(tiny_dataset, jitter_x=0.0, jitter_y=0.0),
                                         root=tiny_dataset, batch_size=4, seed=0)
    for split in ("val", "test"):  # held-out units are the dancers as they are
        dm.setup("validate" if split == "val" else "test")
        plain.setup("validate" if split == "val" else "test")
        assert torch.equal(dm.split_dataset(split)[0]["pose_a"], plain.split_dataset(split)[0]["pose_a"])
    with pytest.raises(D2MError, match="data.scale_jitter"):
        datamodules.build_datamodule("units", cfg_for(tiny_dataset, scale_jitter=1.5), root=tiny_dataset)


def test_sequences_carry_all_the_music_under_them(tiny_dataset):
    dm = datamodules.build_datamodule("sequences", cfg_for(tiny_dataset), root=tiny_dataset, batch_size=4,
                                      seed=0)
    batch = first_batch(dm, "val")
    assert batch["poses"].shape == (4, 3, 32, 28) and batch["features"].shape == (4, 96, 28)
    assert batch["label"].shape == (4,)
    ds = CanonicalDataset(tiny_dataset)
    clip = ds.load_clip(ds.clip_ids("val")[0])
    expected = (clip.features[:96] - dm.feature_mean) / dm.feature_std
    assert np.allclose(batch["features"][0].numpy(), expected, atol=1e-5)
    poses = (flatten(clip.poses[:96]) - dm.pose_mean) / dm.pose_std
    assert np.allclose(batch["poses"][0].reshape(96, 28).numpy(), poses, atol=1e-5)


def test_style_filter_for_units_and_sequences(tiny_dataset):
    for kind in ("units", "sequences"):
        dm = datamodules.build_datamodule(kind, cfg_for(tiny_dataset, styles=["ballet"]), root=tiny_dataset,
                                          batch_size=64, seed=0)
        assert dm.class_names == ["zumba", "ballet", "hiphop"]  # labels keep the dataset's numbering
        dm.setup("fit")
        labels = torch.cat([b["label"] for b in dm.train_dataloader()])
        assert set(labels.tolist()) == {1}
    with pytest.raises(D2MError, match="unknown style 'tango'"):
        datamodules.build_datamodule("units", cfg_for(tiny_dataset, styles=["tango"]), root=tiny_dataset)


def test_beat_normalized_mode(tiny_dataset):
    cfg = cfg_for(tiny_dataset, unit_mode="beat_normalized")
    dm = datamodules.build_datamodule("units", cfg, root=tiny_dataset, batch_size=8, seed=0)
    dm.setup("fit")
    bank = dm.split_dataset("train").bank.numpy()
    hits = [set(kinematic_beats(u)) >= {3, 11, 19, 27} for u in bank[:: max(1, len(bank) // 20)]]
    assert np.mean(hits) > 0.8
    seq = datamodules.build_datamodule("sequences", cfg, root=tiny_dataset, batch_size=2, seed=0)
    batch = first_batch(seq)
    assert batch["poses"].shape == (2, 3, 32, 28) and batch["features"].shape == (2, 96, 28)


def test_seeded_shuffling_and_no_disk_reads(tiny_dataset, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_dataset, copy)
    a = datamodules.build_datamodule("style", cfg_for(copy), root=copy, batch_size=8, seed=3)
    b = datamodules.build_datamodule("style", cfg_for(copy), root=copy, batch_size=8, seed=3)
    c = datamodules.build_datamodule("style", cfg_for(copy), root=copy, batch_size=8, seed=4)
    ba, bb, bc = first_batch(a), first_batch(b), first_batch(c)
    assert torch.equal(ba["features"], bb["features"]) and not torch.equal(ba["features"], bc["features"])
    shutil.rmtree(copy)  # everything is in memory after setup
    assert sum(len(batch["label"]) for batch in a.train_dataloader()) == len(a.split_dataset("train"))


def test_ensure_dataset(tiny_dataset, tmp_path):
    assert datamodules.ensure_dataset(cfg_for(tiny_dataset)) == tiny_dataset
    bad = cfg_for(tiny_dataset, features=FeatureConfig(n_mfcc=20))
    with pytest.raises(D2MError, match="features.n_mfcc"):
        datamodules.ensure_dataset(bad)
    # the backend is how features are computed, not what they are
    assert datamodules.ensure_dataset(cfg_for(tiny_dataset, features=FeatureConfig(backend="torchaudio")))
    with pytest.raises(D2MError, match="no dataset"):
        datamodules.ensure_dataset(cfg_for(tmp_path / "absent"))
    as_dict = {"root": str(tiny_dataset), "source": "canonical", "features": {"n_mels": 40}}
    assert datamodules.ensure_dataset(as_dict) == tiny_dataset
    with pytest.raises(D2MError, match="data.colour"):
        datamodules.ensure_dataset({"root": str(tiny_dataset), "colour": 1})


def test_ensure_dataset_builds_synthetic_on_demand(tmp_path):
    synth = SynthConfig(clips_per_style=3, seconds=5.0, seed=1)
    cfg = DataConfig(root=str(tmp_path / "synth"), source="synth", synth=synth)
    root = datamodules.ensure_dataset(cfg)
    assert (root / "dataset.json").is_file() and len(CanonicalDataset(root).clips) == 9
    stamp = (root / "dataset.json").stat().st_mtime_ns
    assert datamodules.ensure_dataset(cfg) == root and (root / "dataset.json").stat().st_mtime_ns == stamp
    bigger = SynthConfig(clips_per_style=4, seconds=5.0, seed=1)
    other = DataConfig(root=str(root), source="synth", synth=bigger)
    with pytest.raises(D2MError, match="data.synth.clips_per_style"):
        datamodules.ensure_dataset(other)


def test_bad_kind(tiny_dataset):
    with pytest.raises(D2MError, match="kind"):
        datamodules.build_datamodule("poses", cfg_for(tiny_dataset), root=tiny_dataset)
