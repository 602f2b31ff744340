"""The code MMD terms (z_dance and movement codes): a known answer, zero for one distribution, they widen
a narrowed one, style by style where asked, off in `paper`."""

import pytest
import torch

from experiments.config import load_config
from lightning_modules.config import LossTermConfig
from lightning_modules.losses import build_terms
from lightning_modules.losses.composition_dance_code_mmd import mmd


def term(spread=0.0, name="dance_code_mmd"):
    cfg = {name: LossTermConfig(enabled=True, weight=1.0)}
    model = type("Cfg", (), {"code_mmd_style_spread": spread})()
    return build_terms("composition", cfg, model)[name]


def test_a_known_answer_with_one_kernel():
    x, y = torch.tensor([[0.0], [1.0]]), torch.tensor([[0.0], [3.0]])
    # the real codes' mean squared distance is 9, so c = 9: k(d2) = 9 / (9 + d2)
    within_x, within_y = 9 / 10, 9 / 18
    across = (1.0 + 9 / 18 + 9 / 10 + 9 / 13) / 4
    assert float(mmd(x, y, scales=(1.0,))) == pytest.approx(within_x + within_y - 2 * across, abs=1e-6)


def test_near_zero_for_one_distribution_and_larger_for_a_narrowed_one():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(256, 8, generator=g)
    same = torch.randn(256, 8, generator=g)
    assert abs(float(mmd(same, real))) < 0.01
    assert float(mmd(0.5 * same, real)) > 0.1
    assert float(mmd(0.5 * same, real)) > float(mmd(0.8 * same, real)) > float(mmd(same, real))


def test_descending_it_widens_the_music_codes_and_leaves_the_real_ones():
    g = torch.Generator().manual_seed(1)
    real = torch.randn(64, 4, generator=g).requires_grad_(True)
    music = (0.3 * torch.randn(64, 4, generator=g)).requires_grad_(True)
    style = torch.randn(64, 3, generator=g)
    t = term(spread=0.0)  # the codes alone
    assert set(t.reads) == {"dance_z", "music_z", "style"} and t.steps == ("generator",)
    opt = torch.optim.SGD([music], lr=20.0)
    before = float(music.detach().std())
    for _ in range(100):
        opt.zero_grad()
        loss = t.compute("generator", {"music_z": music, "dance_z": real, "style": style}, None)
        loss.backward()
        assert real.grad is None  # the real dances' codes are detached
        opt.step()
    assert before < 0.4 and float(music.detach().std()) > 0.7


def test_with_the_style_joined_it_sees_codes_of_the_wrong_style():
    """Two styles whose real codes sit at +3 and -3: music codes with the styles swapped match the
    real codes as a whole (the codes-alone MMD is near zero) but not style by style."""
    g = torch.Generator().manual_seed(2)
    style = torch.cat([torch.ones(64, 2), -torch.ones(64, 2)])
    centre = torch.cat([torch.full((64, 4), 3.0), torch.full((64, 4), -3.0)])
    real = centre + 0.3 * torch.randn(128, 4, generator=g)
    swapped = -centre + 0.3 * torch.randn(128, 4, generator=g)
    right = centre + 0.3 * torch.randn(128, 4, generator=g)

    def value(spread, music):
        return float(term(spread).compute("generator", {"music_z": music, "dance_z": real, "style": style}, None))

    assert abs(value(0.0, swapped)) < 0.05 and abs(value(0.0, right)) < 0.05
    assert value(4.0, swapped) > 0.5 and abs(value(4.0, right)) < 0.05


def test_the_movement_code_term_widens_the_music_units_codes_and_leaves_the_encoders():
    g = torch.Generator().manual_seed(3)
    real = torch.randn(96, 6, generator=g).requires_grad_(True)  # 32 sequences of 3 units
    music = (0.3 * torch.randn(96, 6, generator=g)).requires_grad_(True)
    style = torch.randn(32, 3, generator=g)
    t = term(name="movement_code_mmd")
    assert set(t.reads) == {"music_movement_mean", "movement_mean", "style"} and t.steps == ("generator",)
    opt = torch.optim.SGD([music], lr=20.0)
    before = float(music.detach().std())
    for _ in range(100):
        opt.zero_grad()
        t.compute("generator", {"music_movement_mean": music, "movement_mean": real, "style": style}, None).backward()
        assert real.grad is None
        opt.step()
    assert before < 0.4 and float(music.detach().std()) > 0.7


def test_the_movement_code_term_joins_each_sequences_style_to_its_units():
    """Units of two styles (sequences alternate) whose real codes sit at +3 and -3: with the style joined
    the term tells music units of the swapped style from the right ones; it needs each sequence's style
    repeated over its own L units, in the sample-major order of the rows."""
    g = torch.Generator().manual_seed(4)
    units = 3
    style = torch.tensor([[1.0, 1.0], [-1.0, -1.0]]).repeat(32, 1)  # (64 sequences, 2)
    centre = style[:, :1].repeat_interleave(units, dim=0).expand(-1, 4) * 3.0  # (192 units, 4)
    real = centre + 0.3 * torch.randn(192, 4, generator=g)
    swapped = -centre + 0.3 * torch.randn(192, 4, generator=g)
    right = centre + 0.3 * torch.randn(192, 4, generator=g)

    def value(spread, music):
        out = {"music_movement_mean": music, "movement_mean": real, "style": style}
        return float(term(spread, "movement_code_mmd").compute("generator", out, None))

    assert abs(value(0.0, swapped)) < 0.05 and abs(value(0.0, right)) < 0.05
    assert value(4.0, swapped) > 0.5 and abs(value(4.0, right)) < 0.05


def test_the_terms_are_off_in_the_paper_preset():
    losses = load_config("paper", []).composition.losses
    assert losses.dance_code_mmd.enabled is False and losses.movement_code_mmd.enabled is False
