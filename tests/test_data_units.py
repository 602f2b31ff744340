"""Units both ways: fixed windows and beat-normalised units (beats on frames 3, 11, 19, 27)."""

import numpy as np
import pytest

from common.errors import D2MError
from datamodules.motion import kinematic_beats, motion_speed
from datamodules.units import (
    UnitSpec,
    beat_frames_in_unit,
    beat_normalized_units,
    beat_time_maps,
    build_bank,
    fixed_starts,
)

BEATS = np.array([4, 13, 21, 31, 38, 47, 55, 64, 72, 80, 89])  # irregular: gaps of 7 to 10 frames


def eased_dance(beats: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """(n, 28) poses that rest on each beat: a cosine ease between random key poses."""
    rng = np.random.default_rng(seed)
    keys = rng.uniform(100, 300, (beats.size, 28))
    t = np.arange(n, dtype=float)
    k = np.clip(np.searchsorted(beats, t, side="right") - 1, 0, beats.size - 2)
    u = np.clip((t - beats[k]) / (beats[k + 1] - beats[k]), 0, 1)
    s = (1 - np.cos(np.pi * u)) / 2
    return (keys[k] + s[:, None] * (keys[k + 1] - keys[k])).astype(np.float32)


def test_kinematic_beats_of_a_constructed_dance():
    poses = eased_dance(BEATS, 90)
    assert list(kinematic_beats(poses)) == list(BEATS[1:-1])
    assert motion_speed(poses).shape == (90,)


def test_beat_normalized_units_put_beats_on_3_11_19_27():
    assert list(beat_frames_in_unit(32)) == [3, 11, 19, 27]
    poses = eased_dance(BEATS, 90)
    feats = np.repeat(np.arange(90, dtype=np.float32)[:, None], 4, axis=1)  # feature = source frame number
    ks, maps = beat_time_maps(BEATS)
    assert np.allclose(maps[:, [3, 11, 19, 27]], BEATS[ks[:, None] + np.arange(4)])
    spec = UnitSpec(mode="beat_normalized", sequence_units=2)
    units, unit_feats, seqs = beat_normalized_units(poses, feats, spec, beats=BEATS)
    assert units.shape == (len(ks), 32, 28) and unit_feats.shape == (len(ks), 32, 4)
    for unit in units:
        assert list(kinematic_beats(unit)) == [3, 11, 19, 27]
    # features are warped with the same map: frame 3 of unit k carries the music of beat k
    assert np.allclose(unit_feats[:, 3, 0], BEATS[ks])
    # a sequence chains units four beats apart, so it continues where the previous unit ended
    for a, b in seqs:
        assert ks[b] == ks[a] + 4
    # found from the poses alone, the beats are the same
    units_auto, _, _ = beat_normalized_units(poses, feats, spec)
    assert units_auto.shape[0] >= 1


def test_irregular_beats_are_skipped():
    beats = np.array([4, 12, 20, 28, 60, 68, 76, 84, 92, 100, 108])  # a 32-frame pause
    ks, _ = beat_time_maps(beats, min_gap=4, max_gap=16)
    assert all(not (k - 1 <= 3 <= k + 3) for k in ks)  # no unit spans the pause (interval 3 -> 4)
    assert 5 in ks


def test_fixed_units_and_sequences():
    assert list(fixed_starts(100, 32, 8)) == [0, 8, 16, 24, 32, 40, 48, 56, 64]
    assert list(fixed_starts(100, 32, 8, span_units=3)) == [0]
    assert fixed_starts(20, 32, 8).size == 0
    a = np.arange(100 * 28, dtype=np.float32).reshape(100, 28)
    b = np.arange(40 * 28, dtype=np.float32).reshape(40, 28) + 10_000
    fa, fb = a[:, :3].copy(), b[:, :3].copy()
    bank = build_bank([a, b], [fa, fb], [0, 2], UnitSpec(stride=8, sequence_units=3))
    assert bank.unit_index.shape == (9 + 2, 1)
    assert list(bank.unit_labels) == [0] * 9 + [2] * 2
    assert bank.seq_index.tolist() == [[0, 32, 64]]
    # bank rows are windows of the concatenated clips; no unit crosses from one clip into the next
    for (row,) in bank.unit_index:
        window = bank.poses[row]
        assert np.array_equal(window, np.concatenate([a, b])[row : row + 32])
        assert row + 32 <= 100 or row >= 100
    seq = bank.features[bank.seq_index[0]].reshape(-1, 3)
    assert np.array_equal(seq, fa[:96])


def test_bad_unit_spec():
    with pytest.raises(D2MError, match="unit_mode"):
        UnitSpec(mode="sliding")
    with pytest.raises(D2MError, match="unit_frames"):
        UnitSpec(unit_frames=30)
