"""generate_dance: length, chaining, multimodality, still-unit redraws; beat warping in frame indices."""

import numpy as np
import pytest
import torch

from common.errors import D2MError
from evaluation.generation import blend_seam, generate_dance, kinematic_beats, motion_px, warp_to_beats
from experiments.presets import PRESETS
from lightning_modules.composition_module import CompositionModule
from lightning_modules.networks.composition_gan import CompositionGAN

TINY = PRESETS["tiny"]
F, P = 28, 28


@pytest.fixture(scope="module")
def model() -> CompositionGAN:
    torch.manual_seed(0)
    m = CompositionModule(TINY["composition"], TINY["decomposition"], TINY["style"], feature_dim=F,
                          class_names=["ballet", "hiphop", "zumba"], pose_mean=[100.0] * P,
                          pose_std=[20.0] * P)
    return m.model.eval()


@pytest.mark.parametrize("frames", [1, 31, 32, 95, 96, 97, 250])
def test_dance_has_one_pose_per_music_frame(model, frames):
    dance = generate_dance(model, torch.randn(frames, F), generator=torch.Generator().manual_seed(0))
    assert dance.shape == (1, frames, P)
    assert torch.isfinite(dance).all()


def _spy(monkeypatch, net) -> list[tuple]:
    """Record the arguments of every call to `net` (an nn.Module)."""
    calls = []
    original = net.forward

    def spy(*args, **kwargs):
        calls.append(tuple(a.detach().clone() if isinstance(a, torch.Tensor) else a for a in args))
        return original(*args, **kwargs)

    monkeypatch.setattr(net, "forward", spy)
    return calls


def test_samples_for_one_music_differ_and_a_seed_repeats(model, monkeypatch):
    music = torch.randn(200, F)
    a = generate_dance(model, music, samples=3, generator=torch.Generator().manual_seed(1))
    calls = _spy(monkeypatch, model.stdp_dec)
    b = generate_dance(model, music, samples=3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    for i in range(3):
        for j in range(i + 1, 3):
            assert (a[i] - a[j]).abs().mean() > 1e-3
    # all samples start from the same (drawn) initial pose, so they differ by the model's randomness only
    z_init = calls[0][0]
    torch.testing.assert_close(z_init, z_init[:1].expand(3, -1))


def test_given_initial_pose_starts_the_dance(model, monkeypatch):
    init = torch.randn(P)
    calls = _spy(monkeypatch, model.stdp_dec)
    generate_dance(model, torch.randn(64, F), samples=2, init_pose=init,
                   generator=torch.Generator().manual_seed(0))
    expected, _ = model.initp_enc(init[None])
    torch.testing.assert_close(calls[0][0], expected.expand(2, -1))


def test_units_chain_from_the_last_pose_of_the_unit_before(model, monkeypatch):
    calls = _spy(monkeypatch, model.initp_enc)
    dance = generate_dance(model, torch.randn(96, F), generator=torch.Generator().manual_seed(0),
                           motion_threshold=0.0)
    seen = [c[0] for c in calls]
    # first call: the drawn initial pose; then the last pose of each of the three units
    assert len(seen) == 4
    torch.testing.assert_close(seen[1], dance[:, 31])
    torch.testing.assert_close(seen[2], dance[:, 63])


def test_still_units_are_redrawn_a_bounded_number_of_times(model, monkeypatch):
    calls = {"n": 0}
    original = model.stdp_dec.forward

    def counting(*args, **kwargs):
        calls["n"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(model.stdp_dec, "forward", counting)
    music = torch.randn(64, F)  # two units
    generate_dance(model, music, generator=torch.Generator().manual_seed(0), motion_threshold=0.0)
    assert calls["n"] == 2
    calls["n"] = 0
    dance = generate_dance(model, music, generator=torch.Generator().manual_seed(0), motion_threshold=1e9,
                           max_retries=3)
    assert calls["n"] == 2 * (1 + 3)
    assert dance.shape == (1, 64, P)


def test_redraws_keep_the_most_moving_attempt(model):
    music = torch.randn(32, F)
    plain = generate_dance(model, music, samples=4, generator=torch.Generator().manual_seed(5),
                           motion_threshold=0.0)
    redrawn = generate_dance(model, music, samples=4, generator=torch.Generator().manual_seed(5),
                             motion_threshold=1e9, max_retries=4)
    assert (motion_px(redrawn, model.pose_std) >= motion_px(plain, model.pose_std) - 1e-6).all()


def test_bad_inputs_are_clear_errors(model):
    with pytest.raises(D2MError, match="empty"):
        generate_dance(model, torch.zeros(0, F))
    with pytest.raises(D2MError, match="features per frame"):
        generate_dance(model, torch.randn(40, F + 1))
    with pytest.raises(D2MError, match="init_pose"):
        generate_dance(model, torch.randn(40, F), init_pose=torch.zeros(5))
    with pytest.raises(D2MError, match="seam blend"):
        generate_dance(model, torch.randn(40, F), blend_frames=-1)


def test_a_blended_unit_carries_on_one_step_past_the_unit_before():
    previous = torch.tensor([[[0.0, 0.0], [1.0, -2.0], [2.0, -4.0]]])  # steps of (1, -2) a frame
    unit = torch.full((1, 4, 2), 10.0)
    blended = blend_seam(previous, unit, frames=2)
    # frame 0 lands one step past the last frame (3, -6); frame 1 keeps half the offset; then as decoded
    expected = torch.tensor([[[3.0, -6.0], [6.5, 2.0], [10.0, 10.0], [10.0, 10.0]]])
    torch.testing.assert_close(blended, expected)
    torch.testing.assert_close(blend_seam(previous, unit, frames=0), unit)


def test_seam_blending_removes_the_jump_between_units_and_keeps_each_units_end(model):
    music = torch.randn(96, F)
    raw = generate_dance(model, music, generator=torch.Generator().manual_seed(3), motion_threshold=0.0)
    blended = generate_dance(model, music, generator=torch.Generator().manual_seed(3), motion_threshold=0.0,
                             blend_frames=8)
    for seam in (32, 64):
        torch.testing.assert_close(blended[:, seam] - blended[:, seam - 1], blended[:, seam - 1] - blended[:, seam - 2])
        torch.testing.assert_close(blended[:, seam + 8:seam + 32], raw[:, seam + 8:seam + 32])
    torch.testing.assert_close(blended[:, :32], raw[:, :32])  # the first unit has no unit before it


def _stopping_dance(n: int, stops_every: int = 8, first_stop: int = 3) -> np.ndarray:
    """A figure moving right whose speed drops to zero at frames first_stop + k * stops_every."""
    t = np.arange(n, dtype=np.float64)
    x = t - stops_every / (2 * np.pi) * np.sin(2 * np.pi * (t - first_stop) / stops_every)
    poses = np.zeros((n, P))
    poses[:, 0::2] = 5.0 * x[:, None] + np.arange(P // 2) * 3.0
    poses[:, 1::2] = 200.0
    return poses


def test_kinematic_beats_fall_on_the_stops():
    assert kinematic_beats(_stopping_dance(64)).tolist() == [3, 11, 19, 27, 35, 43, 51, 59]


def test_beat_warping_moves_kinematic_beats_onto_music_beat_frames():
    dance = _stopping_dance(96)
    music_beats = np.array([5, 13, 21, 29, 37, 45, 53, 61, 69, 77, 85, 93])  # frame indices at 15 fps
    warped = warp_to_beats(dance, music_beats)
    assert warped.shape == dance.shape
    assert kinematic_beats(warped).tolist() == music_beats[:-1].tolist() + [93]
    # the time map is monotone: the figure still only moves right
    assert (np.diff(warped[:, 0]) >= -1e-9).all()
    tensor = warp_to_beats(torch.from_numpy(dance).float(), music_beats.tolist())
    assert isinstance(tensor, torch.Tensor) and tensor.shape == (96, P)


def test_beat_warping_refuses_seconds():
    dance = _stopping_dance(64)
    seconds = np.array([5, 13, 21, 29]) / 15.0
    with pytest.raises(D2MError, match="frame indices"):
        warp_to_beats(dance, seconds)
    # the same beats as frame indices are honoured, and beats past the end are ignored
    warped = warp_to_beats(dance, [5, 13, 21, 29, 37, 45, 53, 61, 500])
    assert kinematic_beats(warped).tolist() == [5, 13, 21, 29, 37, 45, 53, 61]


def test_far_music_beats_leave_the_dance_alone():
    dance = _stopping_dance(64)
    np.testing.assert_allclose(warp_to_beats(dance, [], unit_frames=32), dance)
    np.testing.assert_allclose(warp_to_beats(dance, [7, 15, 23], max_shift=2), dance)
