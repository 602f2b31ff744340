"""Decomposition networks: original checkpoint layout at paper size, shapes at every preset, fast GRU."""

import pytest
import torch
from omegaconf import OmegaConf

from experiments.presets import PRESETS
from lightning_modules.config import DecompositionConfig
from lightning_modules.networks import (
    GRU,
    MLP,
    InitialPoseEncoder,
    MovementEncoder,
    PoseDecoder,
    build_decomposition_networks,
)


def preset_cfg(preset: str) -> DecompositionConfig:
    over = PRESETS[preset].get("decomposition", {})
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(DecompositionConfig), over))


# DESIGN.md section 9, Stage1.ckpt at paper size.
PAPER_SHAPES = {
    "initp_enc": {
        "enc.0.weight": (64, 28), "enc.0.bias": (64,), "enc.1.weight": (64,), "enc.1.bias": (64,),
        "enc.3.weight": (64, 64), "enc.3.bias": (64,), "enc.4.weight": (64,), "enc.4.bias": (64,),
        "mean.0.weight": (10, 64), "mean.0.bias": (10,), "std.0.weight": (10, 64), "std.0.bias": (10,),
    },
    "initp_dec": {
        "dec.0.weight": (64, 10), "dec.0.bias": (64,), "dec.1.weight": (64,), "dec.1.bias": (64,),
        "dec.3.weight": (64, 64), "dec.3.bias": (64,), "dec.4.weight": (64,), "dec.4.bias": (64,),
        "dec.6.weight": (28, 64), "dec.6.bias": (28,),
    },
    "movement_enc": {
        "init_h": (2, 1, 1024),
        **{f"recurrent.{n}{s}": shape for s in ("", "_reverse") for n, shape in (
            ("weight_ih_l0", (3072, 28)), ("weight_hh_l0", (3072, 1024)),
            ("bias_ih_l0", (3072,)), ("bias_hh_l0", (3072,)))},
        "mean.0.weight": (512, 2048), "mean.0.bias": (512,), "std.0.weight": (512, 2048), "std.0.bias": (512,),
    },
    "stdp_dec": {
        "z2init.0.weight": (1024, 522), "z2init.0.bias": (1024,),
        "recurrent.weight_ih_l0": (3072, 512), "recurrent.weight_hh_l0": (3072, 1024),
        "recurrent.bias_ih_l0": (3072,), "recurrent.bias_hh_l0": (3072,),
        "pose_g.0.weight": (1024, 1024), "pose_g.0.bias": (1024,), "pose_g.1.weight": (1024,),
        "pose_g.1.bias": (1024,), "pose_g.3.weight": (28, 1024), "pose_g.3.bias": (28,),
    },
}


def test_paper_size_state_dicts_match_the_original_checkpoint_layout():
    nets = build_decomposition_networks(preset_cfg("paper"))
    assert set(nets) == set(PAPER_SHAPES)
    for name, expected in PAPER_SHAPES.items():
        got = {k: tuple(v.shape) for k, v in nets[name].state_dict().items()}
        assert got == expected, name
        # a checkpoint with exactly these keys loads strictly (key-for-key copy)
        nets[name].load_state_dict({k: torch.zeros(s) for k, s in expected.items()}, strict=True)


@pytest.mark.parametrize("preset", ["paper", "small", "tiny"])
def test_forward_shapes_at_every_preset(preset):
    cfg = preset_cfg(preset)
    nets = build_decomposition_networks(cfg)
    poses = torch.randn(2, 32, 28)
    with torch.no_grad():
        mi, li = nets["initp_enc"](poses[:, 0])
        assert mi.shape == li.shape == (2, cfg.init_dim)
        assert nets["initp_dec"](mi).shape == (2, 28)
        mm, lm = nets["movement_enc"](poses)
        assert mm.shape == lm.shape == (2, cfg.movement_dim)
        assert nets["stdp_dec"](mi, mm).shape == (2, 32, 28)
        assert nets["stdp_dec"](mi, mm, length=7).shape == (2, 7, 28)


def test_movement_encoder_joins_last_forward_and_first_backward_outputs():
    enc = MovementEncoder(28, 6, 5)
    poses = torch.randn(3, 10, 28)
    out, _ = enc.recurrent(poses, enc.init_h.expand(-1, 3, -1).contiguous())
    joined = torch.cat([out[:, -1, :6], out[:, 0, 6:]], dim=1)
    mean, logvar = enc(poses)
    torch.testing.assert_close(mean, enc.mean(joined))
    torch.testing.assert_close(logvar, enc.std(joined))
    # the code depends on every frame, in both directions
    changed = poses.clone()
    changed[:, 5] += 1.0
    assert not torch.allclose(enc(changed)[0], mean)


def test_learned_initial_state_is_used_and_trained():
    enc = InitialPoseEncoder(28, 8, 4)
    assert [k for k in enc.state_dict() if k.startswith("enc.")] == [
        "enc.0.weight", "enc.0.bias", "enc.1.weight", "enc.1.bias",
        "enc.3.weight", "enc.3.bias", "enc.4.weight", "enc.4.bias"]
    menc = MovementEncoder(28, 6, 5)
    menc(torch.randn(2, 8, 28))[0].sum().backward()
    assert menc.init_h.grad is not None and menc.init_h.grad.abs().sum() > 0


def test_fast_and_plain_recurrence_agree_in_outputs_and_gradients():
    torch.manual_seed(0)
    fast = PoseDecoder(4, 8, 16, 28, fast_recurrence=True).double()
    plain = PoseDecoder(4, 8, 16, 28, fast_recurrence=False).double()
    plain.load_state_dict(fast.state_dict())
    z_i = torch.randn(5, 4, dtype=torch.float64)
    z_m = torch.randn(5, 8, dtype=torch.float64)
    outs, grads = [], []
    for net in (fast, plain):
        zi, zm = z_i.clone().requires_grad_(), z_m.clone().requires_grad_()
        y = net(zi, zm, length=32)
        (y * torch.linspace(-1, 1, 28, dtype=torch.float64)).sum().backward()
        outs.append(y.detach())
        grads.append([zi.grad, zm.grad] + [p.grad for p in net.parameters()])
    torch.testing.assert_close(outs[0], outs[1])
    for a, b in zip(grads[0], grads[1], strict=True):
        torch.testing.assert_close(a, b)
    # and in float32, as trained, to float tolerance
    f32 = [net.float()(z_i.float(), z_m.float()) for net in (fast, plain)]
    torch.testing.assert_close(f32[0], f32[1], atol=1e-5, rtol=1e-5)


def test_gru_fast_path_falls_back_for_stacked_layers():
    gru = GRU(3, 5, num_layers=2)
    x, h0 = torch.randn(2, 3), torch.randn(2, 2, 5)
    torch.testing.assert_close(gru.forward_constant(x, h0, 4, fast=True), gru.forward_constant(x, h0, 4, fast=False))


def test_mlp_layout_counts_norm_and_activation_layers():
    m = MLP([10, 64, 64, 28])
    assert [type(layer).__name__ for layer in m] == [
        "Linear", "LayerNorm", "LeakyReLU", "Linear", "LayerNorm", "LeakyReLU", "Linear"]
    assert m[2].negative_slope == pytest.approx(0.2)
    no_norm = MLP([30, 30, 3], act="relu", norm=False)
    assert [k for k in no_norm.state_dict()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    closed = MLP([28, 30, 30], plain_last=False)
    assert len(closed) == 6 and isinstance(closed[-1], torch.nn.LeakyReLU)
