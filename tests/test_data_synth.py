"""The synthetic generator: determinism, tempo, beats, bodies, and the dataset it writes."""

import numpy as np
import pytest

from common.errors import D2MError
from datamodules.audio import compute_features, load_audio, music_beats, music_tempo
from datamodules.config import FeatureConfig, SynthConfig
from datamodules.dataset import CanonicalDataset
from datamodules.motion import kinematic_beats
from datamodules.skeleton import bone_lengths, flatten
from datamodules.synth import STYLES, TEMPO_RANGE, build_synthetic, generate_clip
from datamodules.synth.plan import DIFFICULTY, plan_clip

SR, FPS = 22050, 15


@pytest.fixture(scope="module")
def clips():
    return {style: generate_clip(style, 1, 12.0, "medium", 0, SR, FPS) for style in STYLES}


def test_generator_is_deterministic_by_seed():
    a = generate_clip("hiphop", 0, 6.0, "medium", 3, SR, FPS)
    b = generate_clip("hiphop", 0, 6.0, "medium", 3, SR, FPS)
    c = generate_clip("hiphop", 0, 6.0, "medium", 4, SR, FPS)
    assert np.array_equal(a.wave, b.wave) and np.array_equal(a.poses, b.poses)
    assert not np.array_equal(a.wave, c.wave)
    assert not np.allclose(a.poses, c.poses)


def test_tempo_ranges_overlap_and_are_respected():
    ranges = sorted(TEMPO_RANGE.values())
    assert all(lo2 < hi1 for (_, hi1), (lo2, _) in zip(ranges, ranges[1:]))
    for style in STYLES:
        for i in range(5):
            plan = plan_clip(style, 10.0, "medium", np.random.default_rng(i))
            lo, hi = TEMPO_RANGE[style]
            assert lo <= plan.tempo <= hi


def test_librosa_recovers_the_tempo(clips):
    for style, clip in clips.items():
        true = clip.plan.tempo
        estimated = music_tempo(clip.wave, SR)
        assert abs(estimated - true) / true < 0.05, (style, true, estimated)
        from_beats = 60.0 * FPS / np.median(np.diff(music_beats(clip.wave, SR, FPS)))
        # beats rounded to whole frames blur the interval by up to half a frame
        assert abs(from_beats - true) / true < 0.07, (style, true, from_beats)


def test_kinematic_beats_land_on_music_beats(clips):
    for style, clip in clips.items():
        kin = kinematic_beats(clip.poses)
        music = clip.beat_frames
        near = np.abs(kin[:, None] - music[None, :]).min(axis=1)
        assert np.mean(near <= 1) > 0.9, style
        covered = np.abs(music[:, None] - kin[None, :]).min(axis=1)
        assert np.mean(covered <= 1) > 0.9, style


def test_bone_lengths_are_constant_and_bodies_differ(clips):
    for clip in clips.values():
        lengths = bone_lengths(clip.poses)
        assert np.all(lengths.std(axis=0) < 1e-3)
        assert np.all(lengths.min(axis=0) > 5.0)
    sizes = [bone_lengths(c.poses)[0].sum() for c in clips.values()]
    assert np.ptp(sizes) > 1.0


def test_difficulty_sets_how_much_is_neutral():
    share = {}
    for difficulty in DIFFICULTY:
        neutral = []
        for i in range(8):
            plan = plan_clip("zumba", 60.0, difficulty, np.random.default_rng(i))
            neutral.append(sum(s.end - s.start for s in plan.sections if s.neutral) / 60.0)
        share[difficulty] = np.mean(neutral)
    assert share["easy"] < share["medium"] < share["hard"]
    # at the default difficulty no neutral stretch outlasts 6 s, so a 10 s window always holds tell-tale music
    plan = plan_clip("ballet", 120.0, "medium", np.random.default_rng(0))
    assert max(s.end - s.start for s in plan.sections if s.neutral) <= 6.0


def test_tiny_dataset_layout_and_splits(tiny_dataset):
    ds = CanonicalDataset(tiny_dataset)
    assert ds.styles == list(STYLES)
    assert ds.meta["feature_dim"] == 28 and ds.meta["has_audio"]
    table = ds.clips
    assert len(table) == 9 and table["clip_id"].is_unique
    for style in STYLES:
        assert sorted(table[table["style"] == style]["split"]) == ["test", "train", "val"]
    ids = {split: set(ds.clip_ids(split)) for split in ("train", "val", "test")}
    assert not (ids["train"] & ids["val"] or ids["train"] & ids["test"] or ids["val"] & ids["test"])
    clip = ds.load_clip(ds.clip_ids("test")[0])
    assert clip.poses.shape == (180, 14, 2) and clip.features.shape == (180, 28)
    assert clip.beats.dtype == np.int64 and clip.beats.max() < 180


def test_stats_come_from_the_train_split_only(tiny_dataset):
    ds = CanonicalDataset(tiny_dataset)
    train = ds.load_clips("train")
    poses = np.concatenate([flatten(c.poses) for c in train])
    feats = np.concatenate([c.features for c in train])
    assert np.allclose(ds.stats.pose_mean, poses.mean(0), atol=1e-2)
    assert np.allclose(ds.stats.pose_std, poses.std(0), atol=1e-2)
    assert np.allclose(ds.stats.feature_mean, feats.mean(0), atol=1e-3)
    everything = np.concatenate([flatten(c.poses) for c in ds.load_clips()])
    assert not np.allclose(ds.stats.pose_mean, everything.mean(0), atol=1e-2)


def test_stored_features_are_what_the_stored_audio_gives(tiny_dataset):
    ds = CanonicalDataset(tiny_dataset)
    clip_id = ds.clip_ids("val")[0]
    wave = load_audio(ds.audio_path(clip_id), SR)
    again = compute_features(wave, SR, FeatureConfig())
    stored = ds.load_clip(clip_id).features
    assert np.allclose(again[: stored.shape[0]], stored, atol=1e-4)


def test_bad_synth_configs(tmp_path):
    with pytest.raises(D2MError, match="clips_per_style"):
        build_synthetic(tmp_path / "a", SynthConfig(clips_per_style=2))
    with pytest.raises(D2MError, match="difficulty"):
        build_synthetic(tmp_path / "b", SynthConfig(difficulty="brutal"))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
