"""The velocity term: zero for a unit rebuilt at any offset, the mean step for a held pose, off in `paper`."""

import torch

from experiments.config import load_config
from lightning_modules.config import LossTermConfig
from lightning_modules.losses import build_terms


def term(pair_reduction="mean"):
    cfg = {"velocity_reconstruction": LossTermConfig(enabled=True, weight=1.0)}
    model = type("Cfg", (), {"pair_reduction": pair_reduction})()
    return build_terms("decomposition", cfg, model)["velocity_reconstruction"]


def test_an_offset_copy_moves_alike_and_a_held_pose_misses_every_step():
    pose = torch.cumsum(torch.full((2, 5, 28), 0.25), dim=1)  # every coordinate moves 0.25 a frame
    out = {"pose_a": pose, "pose_b": pose, "recon_a": pose + 3.0, "recon_b": pose[:, :1].expand_as(pose)}
    t = term()
    assert float(t.compute("generator", out, None)) == 0.5 * (0.0 + 0.25)
    assert float(term("sum").compute("generator", out, None)) == 0.25


def test_the_term_is_off_in_the_paper_preset_and_reads_the_rebuilt_units():
    cfg = load_config("paper", [])
    assert cfg.decomposition.losses.velocity_reconstruction.enabled is False
    assert set(term().reads) == {"recon_a", "recon_b", "pose_a", "pose_b"}
