"""The metrics on constructed inputs whose answers are known."""

import numpy as np
import pytest
from scipy import linalg

from datamodules.errors import D2MError
from evaluation.config import EvaluationConfig
from evaluation.metrics import (
    as_frame_indices,
    beat_align_score,
    beat_coverage,
    beat_hit_rate,
    diversity,
    frechet_distance,
    kinematic_beats,
    motion_speed,
    multimodality,
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


def test_central_difference_puts_a_stop_on_its_own_frame():
    x = np.array([0.0, 1.0, 2.0, 2.5, 2.0, 1.0, 0.0])  # turns around at frame 3
    poses = np.stack([x, np.zeros_like(x)], axis=1)  # (T, 2): one joint
    speed = motion_speed(poses)
    assert speed[3] == 0.0
    assert list(kinematic_beats(poses)) == [3]


def test_held_pose_counts_once_at_the_middle_of_the_hold():
    x = np.array([0.0, 2.0, 3.0, 3.0, 3.0, 3.0, 3.0, 4.0, 6.0])
    poses = np.stack([x, np.zeros_like(x)], axis=1)
    assert list(kinematic_beats(poses)) == [4]


@pytest.mark.parametrize("smoothing", [0.0, CFG.motion_smoothing])
def test_dance_stopping_on_every_beat_scores_full_marks(smoothing):
    dance = dance_stopping_at(IRREGULAR_BEATS, n_frames=92)
    kin = kinematic_beats(dance, smoothing)
    assert list(kin) == list(IRREGULAR_BEATS)
    assert beat_hit_rate([kin], [IRREGULAR_BEATS], CFG.beat_tolerance) == 1.0
    assert beat_align_score([kin], [IRREGULAR_BEATS], CFG.beat_align_sigma) >= 0.95
    assert beat_coverage([kin], [IRREGULAR_BEATS]) == pytest.approx(1.0)


@pytest.mark.parametrize("smoothing", [0.0, CFG.motion_smoothing])
def test_dance_shifted_by_half_a_beat_scores_low_and_never_hits(smoothing):
    period = 8
    music = np.arange(4, 96, period)
    on_beat = dance_stopping_at(music, n_frames=100)
    shifted = dance_stopping_at(music + period // 2, n_frames=100)
    kin_on = kinematic_beats(on_beat, smoothing)
    kin_off = kinematic_beats(shifted, smoothing)
    assert beat_align_score([kin_on], [music], CFG.beat_align_sigma) >= 0.95
    assert beat_align_score([kin_off], [music], CFG.beat_align_sigma) <= 0.2
    assert beat_hit_rate([kin_off], [music], CFG.beat_tolerance) == 0.0
    assert beat_coverage([kin_off], [music]) == pytest.approx(len(kin_off) / len(music))


def test_smoothing_drops_jitter_minima_but_keeps_the_stops_on_their_frames():
    rng = np.random.default_rng(0)
    jittery = dance_stopping_at(IRREGULAR_BEATS, n_frames=92) + rng.normal(0, 2.0, size=(92, 14, 2))
    raw = kinematic_beats(jittery, 0.0)
    smooth = kinematic_beats(jittery, CFG.motion_smoothing)
    assert len(raw) > len(IRREGULAR_BEATS)  # the jitter adds minima of its own
    assert list(smooth) == list(IRREGULAR_BEATS)


def test_beat_metrics_pool_over_dances_and_handle_empty_lists():
    music = [np.array([4, 12, 20]), np.array([5, 13])]
    kin = [np.array([4, 16]), np.array([], dtype=int)]
    assert beat_coverage(kin, music) == pytest.approx(2 / 5)
    assert beat_hit_rate(kin, music, tolerance=2) == pytest.approx(1 / 2)
    # dance 0: d = 0, 4, 4 ; dance 1 has no kinematic beats -> 0
    s = CFG.beat_align_sigma
    expected0 = np.mean(np.exp(-np.array([0.0, 16.0, 16.0]) / (2 * s * s)))
    assert beat_align_score(kin, music, s) == pytest.approx(expected0 / 2)
    assert np.isnan(beat_hit_rate([np.array([], dtype=int)], [np.array([3])], 2))
    assert np.isnan(beat_coverage([np.array([3])], [np.array([], dtype=int)]))


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
    kin = [kinematic_beats(d, CFG.motion_smoothing) for d in dances]
    music = [np.sort(rng.choice(np.arange(2, 68), 7, replace=False)) for _ in dances]

    def all_metrics(order, dance_order):
        return [
            style_consistency(pred[order], target[order]),
            frechet_distance(feats[order], ref),
            diversity(feats[order], groups[order]),
            multimodality(feats[order], groups[order]),
            beat_coverage([kin[i] for i in dance_order], [music[i] for i in dance_order]),
            beat_hit_rate([kin[i] for i in dance_order], [music[i] for i in dance_order], 2),
            beat_align_score([kin[i] for i in dance_order], [music[i] for i in dance_order], 0.75),
        ]

    base = all_metrics(np.arange(24), list(range(5)))
    perm = all_metrics(rng.permutation(24), list(rng.permutation(5)))
    assert perm == pytest.approx(base, rel=1e-9, abs=1e-9)
