"""Training-unit augmentations: another dancer's proportions, mirror images, and the data module's use."""

import numpy as np
import pytest
import torch

import datamodules
from common.errors import D2MError
from datamodules import augment
from datamodules.config import DataConfig
from datamodules.skeleton import BONES, JOINT_INDEX, NUM_JOINTS, bone_lengths
from datamodules.synth.body import Body, forward_kinematics


def dancer_unit(frames=32, seed=0):
    """A unit of the synthetic dancer: random angles through forward kinematics, (T, 28) pixels."""
    rng = np.random.default_rng(seed)
    params = rng.normal(0.0, 0.4, (frames, 12)).cumsum(axis=0) * 0.2
    return torch.from_numpy(forward_kinematics(params, Body()).reshape(frames, -1).copy())


def first_centre(unit):
    return unit.reshape(unit.shape[0], NUM_JOINTS, 2)[0].mean(dim=0)


def test_rescaled_bones_have_the_asked_lengths_and_keep_their_directions():
    unit = dancer_unit()
    factors = torch.linspace(0.8, 1.2, len(BONES))
    new = augment.rescale_bones(unit[None], factors[None])[0]
    ratio = bone_lengths(new.numpy()) / bone_lengths(unit.numpy())
    assert np.allclose(ratio, factors.numpy()[None].repeat(32, axis=0), atol=1e-4)
    j_old, j_new = unit.reshape(32, NUM_JOINTS, 2), new.reshape(32, NUM_JOINTS, 2)
    for parent, child in BONES:
        a, b = j_old[:, child] - j_old[:, parent], j_new[:, child] - j_new[:, parent]
        cos = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))
        assert torch.all(cos > 1 - 1e-5)
    assert torch.allclose(first_centre(new), first_centre(unit), atol=1e-3)
    assert torch.allclose(augment.rescale_bones(unit[None], torch.ones(1, len(BONES)))[0], unit, atol=1e-4)


def test_a_batch_is_augmented_unit_by_unit():
    units = torch.stack([dancer_unit(seed=s) for s in range(3)])
    factors = torch.rand(3, len(BONES)) * 0.4 + 0.8
    scales = torch.tensor([0.9, 1.0, 1.1])
    for fn, args in ((augment.rescale_bones, (factors,)), (augment.scale_about_first_pose, (scales,)),
                     (augment.mirror, ())):
        whole = fn(units, *args)
        for n in range(3):
            alone = fn(units[n : n + 1], *(a[n : n + 1] for a in args))[0]
            assert torch.allclose(whole[n], alone, atol=1e-5)
    scaled = augment.scale_about_first_pose(units, scales)[2].reshape(32, NUM_JOINTS, 2)
    raw = units[2].reshape(32, NUM_JOINTS, 2)
    assert torch.allclose(scaled, raw[0].mean(0) + (raw - raw[0].mean(0)) * 1.1, atol=1e-3)


def test_a_mirrored_unit_swaps_sides_reflects_about_the_first_pose_and_keeps_its_bones():
    unit = dancer_unit(seed=1)
    new = augment.mirror(unit[None])[0]
    c = first_centre(unit)
    assert torch.allclose(first_centre(new), c, atol=1e-3)
    j_old, j_new = unit.reshape(32, NUM_JOINTS, 2), new.reshape(32, NUM_JOINTS, 2)
    right, left = JOINT_INDEX["right_wrist"], JOINT_INDEX["left_wrist"]
    assert torch.allclose(j_new[:, right, 0], 2 * c[0] - j_old[:, left, 0], atol=1e-3)
    assert torch.allclose(j_new[:, right, 1], j_old[:, left, 1])
    assert np.allclose(np.sort(bone_lengths(new.numpy()), axis=1), np.sort(bone_lengths(unit.numpy()), axis=1),
                       atol=1e-3)
    assert torch.allclose(augment.mirror(new[None])[0], unit, atol=1e-3)


def units(root, **kw):
    cfg = DataConfig(root=str(root), source="canonical", jitter_x=0.0, jitter_y=0.0, **kw)
    dm = datamodules.build_datamodule("units", cfg, root=root, batch_size=4, seed=0)
    dm.setup("fit")
    return dm


def pixels(ds, item):
    return (item["pose_a"] * ds.std + ds.mean).reshape(32, NUM_JOINTS, 2)


def test_the_data_module_mirrors_training_units_with_its_probability_and_never_held_out_ones(tiny_dataset):
    dm = units(tiny_dataset, mirror=0.5)
    train = dm.split_dataset("train")
    raw = train.bank[int(train.index[0, 0])]
    plain, flipped = raw.reshape(32, NUM_JOINTS, 2), augment.mirror(raw[None]).reshape(32, NUM_JOINTS, 2)
    seen = []
    for _ in range(60):
        item = train[0]
        assert torch.equal(item["pose_a"], item["pose_b"])  # both copies alike
        p = pixels(train, item)
        is_plain, is_flipped = torch.allclose(p, plain, atol=1e-2), torch.allclose(p, flipped, atol=1e-2)
        assert is_plain != is_flipped
        seen.append(is_flipped)
    assert 15 < sum(seen) < 45
    always = units(tiny_dataset, mirror=1.0).split_dataset("train")
    assert torch.allclose(pixels(always, always[0]), flipped, atol=1e-2)
    off = units(tiny_dataset)
    for split, stage in (("val", "validate"), ("test", "test")):
        dm.setup(stage)
        off.setup(stage)
        assert torch.equal(dm.split_dataset(split)[0]["pose_a"], off.split_dataset(split)[0]["pose_a"])


def test_the_data_module_draws_bone_factors_per_unit_within_their_range(tiny_dataset):
    train = units(tiny_dataset, bone_jitter=0.1).split_dataset("train")
    raw = bone_lengths(train.bank[int(train.index[0, 0])].numpy())
    ratios = []
    for _ in range(30):
        item = train[0]
        assert torch.equal(item["pose_a"], item["pose_b"])
        r = bone_lengths(pixels(train, item).numpy()) / raw
        assert np.allclose(r, r[:1], atol=2e-3)  # one factor per bone, the same in every frame
        ratios.append(r[0])
    ratios = np.array(ratios)
    assert ratios.min() >= 0.9 - 2e-3 and ratios.max() <= 1.1 + 2e-3
    assert ratios.min() < 0.93 and ratios.max() > 1.07 and ratios.std(axis=0).min() > 0.02


def test_the_composition_stage_mirrors_whole_training_sequences_to_the_same_music(tiny_dataset):
    def sequences(**kw):
        cfg = DataConfig(root=str(tiny_dataset), source="canonical", **kw)
        dm = datamodules.build_datamodule("sequences", cfg, root=tiny_dataset, batch_size=4, seed=0)
        dm.setup("fit")
        return dm

    plain, always = sequences().split_dataset("train"), sequences(sequence_mirror=1.0).split_dataset("train")
    a, b = plain[0], always[0]
    mean, std = torch.from_numpy(sequences().pose_mean), torch.from_numpy(sequences().pose_std)
    pixels = (a["poses"] * std + mean).reshape(1, -1, 28)
    expected = ((augment.mirror(pixels) - mean) / std).reshape(a["poses"].shape)
    assert torch.allclose(b["poses"], expected, atol=1e-4) and not torch.allclose(b["poses"], a["poses"])
    assert torch.equal(a["features"], b["features"]) and torch.equal(a["label"], b["label"])
    held_out = sequences(sequence_mirror=1.0)
    held_out.setup("test")
    base = sequences()
    base.setup("test")
    assert torch.equal(held_out.split_dataset("test")[0]["poses"], base.split_dataset("test")[0]["poses"])
    with pytest.raises(D2MError, match="data.sequence_mirror"):
        sequences(sequence_mirror=2.0)


def test_a_batch_fetched_at_once_is_the_items_fetched_one_by_one(tiny_dataset):
    # the data loader asks for whole batches (__getitems__): the same draws as item by item
    one, batch = (units(tiny_dataset, mirror=0.5, bone_jitter=0.1, scale_jitter=0.1).split_dataset("train")
                  for _ in range(2))
    singles = [one[i] for i in range(6)]
    together = batch.__getitems__(list(range(6)))
    for a, b in zip(singles, together, strict=True):
        assert torch.allclose(a["pose_a"], b["pose_a"], atol=1e-5) and torch.equal(a["label"], b["label"])
    loader_batch = next(iter(torch.utils.data.DataLoader(batch, batch_size=4)))
    assert loader_batch["pose_a"].shape == (4, 32, 28) and loader_batch["label"].shape == (4,)


@pytest.mark.parametrize("key,value", [("mirror", 1.5), ("mirror", -0.1), ("bone_jitter", 1.0)])
def test_an_augmentation_out_of_range_is_refused_naming_its_key(tiny_dataset, key, value):
    with pytest.raises(D2MError, match=f"data.{key}"):
        units(tiny_dataset, **{key: value})
