"""The metrics on constructed inputs whose answers are known."""

import numpy as np
import pytest
from scipy import linalg

from common.errors import D2MError
from evaluation.config import EvaluationConfig
from evaluation.metrics import (
    as_frame_indices,
    beat_align_motion_per_dance,
    beat_align_per_dance,
    beat_f1_per_dance,
    beat_speed_ratio,
    bone_length_error,
    bone_lengths,
    diversity,
    frechet_distance,
    kinematic_beats,
    kinetic_features,
    motion_speed,
    multimodality,
    seam_ratio,
    standardise,
    style_consistency,
)

CFG = EvaluationConfig()


def dance_stopping_at(stops, n_frames: int, seed: int = 0) -> np.ndarray:
    """A (T, 14, 2) dance that eases in and out between key poses reached exactly at `stops`.

    Between two stops every joint moves along a half-cosine (zero speed at both ends), so motion
    comes to rest on each stop frame and nowhere else. Extra stops before frame 0 and after the last
    frame keep the dance moving at its two ends.
    """
    rng = np.random.default_rng(seed)
    stops = np.asarray(stops, dtype=np.float64)
    gap = float(np.median(np.diff(stops)))
    keys_t = np.concatenate([[stops[0] - gap], stops, [stops[-1] + gap]])
    keys_t = np.concatenate([keys_t[:1] - gap, keys_t, keys_t[-1:] + gap])
    base = rng.uniform(100, 300, size=(14, 2))
    keys = base[None] + rng.normal(0, 25, size=(keys_t.size, 14, 2))
    t = np.arange(n_frames, dtype=np.float64)
    seg = np.clip(np.searchsorted(keys_t, t, side="right") - 1, 0, keys_t.size - 2)
    phase = (t - keys_t[seg]) / (keys_t[seg + 1] - keys_t[seg])
    ease = (1.0 - np.cos(np.pi * phase)) / 2.0
    return keys[seg] + ease[:, None, None] * (keys[seg + 1] - keys[seg])


IRREGULAR_BEATS = np.array([6, 14, 21, 30, 38, 45, 53, 62, 70, 77, 85])


# --- FID ---------------------------------------------------------------------------------------


def test_fid_identical_sets_is_zero_and_shift_is_larger():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(200, 8)) @ rng.normal(size=(8, 8))
    assert frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-6)
    shifted = feats + 1.0
    fid = frechet_distance(feats, shifted)
    assert fid == pytest.approx(8.0, rel=1e-6)  # ||mu_a - mu_b||^2, covariances equal
    assert frechet_distance(feats, feats + 2.0) > fid


def test_fid_matches_the_sqrtm_formula_when_well_conditioned():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(300, 5))
    b = rng.normal(size=(300, 5)) * 1.7 + 0.3
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s_a @ s_b).real
    expected = np.sum((mu_a - mu_b) ** 2) + np.trace(s_a + s_b - 2 * covmean)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-8)


def test_fid_with_fewer_samples_than_dimensions_is_finite_and_non_negative():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(4, 16)), rng.normal(size=(5, 16))
    fid = frechet_distance(a, b)
    assert np.isfinite(fid) and fid >= 0
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(D2MError, match="at least 2"):
        frechet_distance(a[:1], b)


# --- style consistency, diversity, multimodality ------------------------------------------------


def test_always_right_classifier_gives_style_consistency_one():
    target = np.array([0, 1, 2, 2, 1, 0])
    assert style_consistency(target.copy(), target) == 1.0
    assert style_consistency((target + 1) % 3, target) == 0.0
    assert style_consistency([0, 1, 0, 0], [0, 1, 1, 1]) == pytest.approx(0.5)


def test_identical_samples_give_multimodality_zero():
    rng = np.random.default_rng(3)
    per_music = rng.normal(size=(4, 6))
    feats = np.repeat(per_music, 3, axis=0)  # 3 identical samples for each of 4 pieces of music
    groups = np.repeat(np.arange(4), 3)
    assert multimodality(feats, groups) == pytest.approx(0.0, abs=1e-9)
    assert diversity(feats, groups) > 0
    noisy = feats + rng.normal(0, 0.1, size=feats.shape)
    assert multimodality(noisy, groups) > 0


def test_diversity_and_multimodality_known_values():
    feats = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0], [0.0, 3.0]])
    groups = np.array(["a", "a", "b", "b"])
    # same-music pairs: a: 5, b: 2 -> mean 3.5
    assert multimodality(feats, groups) == pytest.approx(3.5)
    # cross pairs: (0,2)=1, (0,3)=3, (1,2)=sqrt(9+9), (1,3)=sqrt(9+1)
    expected = np.mean([1.0, 3.0, np.sqrt(18.0), np.sqrt(10.0)])
    assert diversity(feats, groups) == pytest.approx(expected)
    assert np.isnan(multimodality(feats, ["a", "b", "c", "d"]))
    assert np.isnan(diversity(feats, ["a"] * 4))


# --- beats ---------------------------------------------------------------------------------------


def _scores(kin, music):
    return (beat_align_per_dance([kin], [music], CFG.beat_align_sigma)[0],
            beat_align_motion_per_dance([kin], [music], CFG.beat_align_sigma)[0],
            beat_f1_per_dance([kin], [music], 15, CFG.beat_tolerance)[0])


def test_central_difference_puts_a_stop_on_its_own_frame():
    x = 4.0 * np.array([0.0, 1.0, 2.0, 2.5, 2.0, 1.0, 0.0])  # turns around at frame 3
    poses = np.stack([x, np.zeros_like(x)], axis=1)  # (T, 2): one joint
    speed = motion_speed(poses)
    assert speed[3] == 0.0 and speed[2] == pytest.approx(3.0)
    assert list(kinematic_beats(poses)) == [3]


def test_held_pose_counts_once_at_the_middle_of_the_hold():
    x = np.array([0.0, 2.0, 3.0, 3.0, 3.0, 3.0, 3.0, 4.0, 6.0])
    poses = np.stack([x, np.zeros_like(x)], axis=1)
    assert list(kinematic_beats(poses)) == [4]


def test_a_minimum_shallower_than_the_depth_is_no_beat():
    x = np.cumsum([0.0, 2.0, 2.0, 2.0, 1.6, 1.6, 2.0, 2.0, 2.0])  # slows from 2 to 1.6 px/frame and back
    poses = np.stack([x, np.zeros_like(x)], axis=1)
    assert list(kinematic_beats(poses, min_depth=0.3)) == [4]
    assert list(kinematic_beats(poses)) == []


@pytest.mark.parametrize("kind", ["gaussian 0.5 px", "uniform under 1 px"])
def test_jitter_below_one_pixel_makes_no_beat_and_scores_zero(kind):
    rng = np.random.default_rng(0)
    pose = rng.uniform(100, 300, size=(1, 14, 2))
    noise = rng.normal(0, 0.5, (900, 14, 2)) if kind.startswith("gaussian") else rng.uniform(-0.5, 0.5, (900, 14, 2))
    jitter = pose + noise
    assert kinematic_beats(jitter).size == 0
    music = np.arange(4, 900, 8)
    assert _scores(kinematic_beats(jitter), music) == (0.0, 0.0, 0.0)  # 0, not NaN


def test_dance_stopping_on_every_beat_scores_one_and_two_frames_late_below_a_tenth():
    dance = dance_stopping_at(IRREGULAR_BEATS, n_frames=92)
    kin = kinematic_beats(dance)
    assert list(kin) == list(IRREGULAR_BEATS)
    assert _scores(kin, IRREGULAR_BEATS) == (1.0, 1.0, 1.0)
    late = dance_stopping_at(IRREGULAR_BEATS + 2, n_frames=94)
    kin_late = kinematic_beats(late)
    assert list(kin_late) == list(IRREGULAR_BEATS + 2)
    assert all(score < 0.1 for score in _scores(kin_late, IRREGULAR_BEATS))


def test_f_measure_window_is_exactly_one_frame():
    music = np.arange(5, 200, 9)
    assert beat_f1_per_dance([music + 1], [music], 15, 1)[0] == 1.0
    assert beat_f1_per_dance([music - 1], [music], 15, 1)[0] == 1.0
    assert beat_f1_per_dance([music + 2], [music], 15, 1)[0] == 0.0
    assert beat_f1_per_dance([music + 2], [music], 15, 2)[0] == 1.0


def test_stopping_all_the_time_is_caught_by_the_motion_direction():
    music = np.arange(4, 200, 8)
    busy = np.arange(1, 200, 3)  # a stop every 3 frames, whatever the music
    on_music, on_motion, f1 = _scores(busy, music)
    assert on_music > 0.4  # beat align over music beats alone is fooled: a stop is never far
    assert on_motion < 0.4 and f1 < 0.6


def test_beat_metrics_known_values_per_dance():
    music = [np.array([4, 12, 20]), np.array([5, 13]), np.array([], dtype=int)]
    kin = [np.array([4, 16]), np.array([], dtype=int), np.array([3])]
    s = CFG.beat_align_sigma
    ba = beat_align_per_dance(kin, music, s)
    assert ba[0] == pytest.approx(np.mean(np.exp(-np.array([0.0, 16.0, 16.0]) / (2 * s * s))))
    assert ba[1] == 0.0 and np.isnan(ba[2])
    bam = beat_align_motion_per_dance(kin, music, s)
    assert bam[0] == pytest.approx(np.mean(np.exp(-np.array([0.0, 16.0]) / (2 * s * s))))
    assert bam[1] == 0.0 and np.isnan(bam[2])
    f1 = beat_f1_per_dance(kin, music, 15, 1)
    assert f1[0] == pytest.approx(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3)) and f1[1] == 0.0 and np.isnan(f1[2])
    with pytest.raises(D2MError, match="2 dances but 3"):
        beat_f1_per_dance(kin[:2], music, 15, 1)


# --- motion statistics ----------------------------------------------------------------------------


def test_kinetic_features_known_values():
    t = np.arange(20, dtype=np.float64)
    poses = np.zeros((20, 14, 2))
    poses[:, :, 0] = 3.0 * t[:, None]  # every joint moves right at 3 px/frame
    poses[:, :, 1] = 100.0
    f = kinetic_features(poses, fps=15)
    assert f.shape == (42,)
    np.testing.assert_allclose(f[:14], (3.0 * 15) ** 2)
    np.testing.assert_allclose(f[14:], 0.0, atol=1e-9)
    assert np.all(kinetic_features(np.repeat(poses[:1], 20, axis=0), fps=15) == 0)
    z = standardise(np.array([[1.0, 5.0]]), np.array([[0.0, 5.0], [2.0, 5.0]]))
    np.testing.assert_allclose(z, [[0.0, 0.0]])


def test_bone_length_error_seam_ratio_and_beat_speed_ratio():
    rng = np.random.default_rng(0)
    pose = rng.uniform(100, 300, size=(1, 14, 2))
    ref = bone_lengths(pose)[0]
    assert bone_length_error(np.repeat(pose, 5, axis=0), ref) == pytest.approx(0.0, abs=1e-12)
    assert bone_length_error(np.repeat(pose * 1.1, 5, axis=0), ref) == pytest.approx(0.1)
    t = np.arange(96, dtype=np.float64)
    smooth = pose + np.stack([2.0 * t, 0 * t], axis=1)[:, None, :]
    assert seam_ratio(smooth, 32) == pytest.approx(1.0)
    jumpy = smooth.copy()
    jumpy[32:] += 20.0  # every joint jumps (20, 20) px into the second unit
    assert seam_ratio(jumpy, 32) == pytest.approx(0.5 * (np.hypot(22.0, 20.0) + 2.0) / 2.0)
    assert np.isnan(seam_ratio(smooth[:20], 32))
    x = 4.0 * np.abs((t % 8) - 4.0)  # stops on frames 4, 12, ...
    dance = np.stack([x, 0 * t], axis=1)
    speed = motion_speed(dance)
    beats = np.arange(4, 96, 8)
    assert beat_speed_ratio(dance, beats) == pytest.approx(speed[beats].mean() / speed.mean())
    assert beat_speed_ratio(dance, beats) < 0.2
    assert np.isnan(beat_speed_ratio(np.zeros((10, 2)), beats))


def test_beats_in_seconds_are_refused():
    with pytest.raises(D2MError, match="seconds"):
        as_frame_indices([0.53, 1.07, 1.6])
    assert list(as_frame_indices([3.0, 11, 40], n_frames=30)) == [3, 11]


# --- order invariance ----------------------------------------------------------------------------


def test_metrics_do_not_depend_on_batch_order():
    rng = np.random.default_rng(4)
    feats = rng.normal(size=(24, 6))
    groups = np.repeat(np.arange(8), 3)
    pred, target = rng.integers(0, 3, 24), rng.integers(0, 3, 24)
    ref = rng.normal(size=(30, 6)) + 0.5
    dances = [dance_stopping_at(np.sort(rng.choice(np.arange(5, 60), 6, replace=False)), 70, seed=i)
              for i in range(5)]
    kin = [kinematic_beats(d) for d in dances]
    music = [np.sort(rng.choice(np.arange(2, 68), 7, replace=False)) for _ in dances]

    def all_metrics(order, dance_order):
        k, m = [kin[i] for i in dance_order], [music[i] for i in dance_order]
        return [
            style_consistency(pred[order], target[order]),
            frechet_distance(feats[order], ref),
            diversity(feats[order], groups[order]),
            multimodality(feats[order], groups[order]),
            *sorted(beat_f1_per_dance(k, m, 15, 1)),
            *sorted(beat_align_per_dance(k, m, 0.75)),
            *sorted(beat_align_motion_per_dance(k, m, 0.75)),
        ]

    base = all_metrics(np.arange(24), list(range(5)))
    perm = all_metrics(rng.permutation(24), list(rng.permutation(5)))
    assert perm == pytest.approx(base, rel=1e-9, abs=1e-9)


def test_one_kinematic_beat_detector_for_units_warping_and_metrics():
    import datamodules.lightning_data as lightning_data
    import datamodules.motion as motion
    import datamodules.units as units
    import evaluation.generation as generation
    from evaluation import metrics

    for user in (units, lightning_data, generation, metrics):
        assert user.kinematic_beats is motion.kinematic_beats, user.__name__
