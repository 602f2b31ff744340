"""The `paper` preset's objective against the original release's formulas, restated here term by term.

Each term is computed by the module on a fixed batch at paper widths and compared with a functional
restatement written below from the original's definitions (DESIGN.md section 3): KL summed over
code dimensions and averaged over the batch, the two jittered copies' terms summed, the movement
distance between sampled codes, the music path's KL outside the loss, the style feature over the
first 30 audio frames. The optimiser of each step, its networks, learning rates, betas and clipping
groups are asserted as well.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from composition_steps import StepRecorder, fit_steps

from experiments.config import load_config, to_container, to_yaml
from lightning_modules.composition_module import CompositionModule, clip_groups
from lightning_modules.config import LossTermConfig
from lightning_modules.decomposition_module import DecompositionModule
from lightning_modules.losses import build_terms, weighted_sum

B, L, T, P, F_DIM = 3, 3, 32, 28, 28
LR = 2e-4


def kl_original(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """-0.5 * sum over code dimensions of (1 + logvar - mu^2 - exp(logvar)), then the mean over the batch."""
    rows = [-0.5 * torch.sum(1 + lv - mu * mu - torch.exp(lv)) for mu, lv in zip(mean, logvar)]
    return torch.stack(rows).mean()


def l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.nn.L1Loss()(x, y)


def bce(logit: torch.Tensor, target: float) -> torch.Tensor:
    return torch.nn.BCEWithLogitsLoss()(logit, torch.full_like(logit, target))


@pytest.fixture(scope="module")
def paper():
    return load_config("paper")


def test_paper_config_is_the_original_recipe(paper):
    for block, epochs in (("decomposition", 1000), ("composition", 1500)):
        o = paper[block].optim
        assert (o.lr, list(o.betas), o.batch_size, o.max_epochs, o.max_steps) == (LR, [0.9, 0.999], 256, epochs, -1)
        assert (o.grad_clip, o.clip_mode) == (0.5, "per_network")
        assert paper[block].kl_reduction == "sum"
    d, c = paper.decomposition, paper.composition
    assert (d.pair_reduction, d.movement_distance_codes) == ("sum", "sampled")
    assert (d.losses.kl.weight, d.losses.kl.warmup_center, d.losses.kl.warmup_slope) == (0.01, 15000.0, 0.0005)
    assert (c.losses.kl.weight, c.losses.kl.enabled, c.losses.music_kl.enabled) == (0.01, True, False)
    assert (c.finetune_movement_encoder, c.finetune_lr_scale, c.style_step, c.style_frames) == (False, 0.1,
                                                                                                 "separate", 30)
    assert c.losses.pose_reconstruction.weight == 10.0


def test_improved_style_extractor_takes_the_study_sizes_unless_overridden():
    cfg = load_config("paper", ["style.arch=improved"])
    assert (cfg.style.hidden, cfg.style.layers, cfg.style.dropout, cfg.style.window, cfg.style.style_dim) == (
        512, 2, 0.3, 150, 30)
    text = to_yaml(cfg)
    assert "hidden: 512" in text and "window: 150" in text  # the config view prints the sizes
    from lightning_modules.style_module import StyleExtractorModule

    net = StyleExtractorModule(to_container(cfg.style), feature_dim=F_DIM, class_names=["a", "b", "c"]).net
    assert (net.recurrent.hidden_size, net.recurrent.num_layers) == (512, 2)
    assert tuple(net.project[0].weight.shape) == (30, 512)
    assert sum(isinstance(m, torch.nn.Dropout) for m in net.classifier) == 2
    assert load_config("paper", ["style.arch=improved", "style.hidden=128"]).style.hidden == 128
    original = load_config("paper").style
    assert (original.hidden, original.layers, original.dropout, original.window) == (30, 1, 0.0, 30)


# -- decomposition -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def decomposition(paper):
    torch.manual_seed(0)
    return DecompositionModule(to_container(paper.decomposition), pose_dim=P).train()


def pose_pair(seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    pose_a = torch.randn(B, T, P, generator=g)
    return {"pose_a": pose_a, "pose_b": pose_a + 0.3 * torch.randn(B, 1, P, generator=g)}


def test_decomposition_terms_equal_the_original_formulas(decomposition):
    m = decomposition
    assert m.model.movement_enc.hidden == 1024 and m.model.movement_enc.mean[0].out_features == 512  # paper widths
    batch = pose_pair()
    torch.manual_seed(2)
    out = m(batch, sample=True)
    got = {name: t.compute("generator", out, m.model.networks) for name, t in m.terms.items()}
    a, b = batch["pose_a"], batch["pose_b"]
    z_init = {c: out[f"z_init_{c}"] for c in "ab"}
    z_move = {c: out[f"z_movement_{c}"] for c in "ab"}
    assert not torch.allclose(z_move["a"], out["movement_mean_a"])  # sampled codes, not the means
    dec = m.model.stdp_dec
    want = {
        "pose_reconstruction": l1(dec(z_init["a"], z_move["a"], T), a) + l1(dec(z_init["b"], z_move["b"], T), b),
        "cross_reconstruction": l1(dec(z_init["a"], z_move["b"], T), a) + l1(dec(z_init["b"], z_move["a"], T), b),
        "movement_distance": l1(z_move["a"], z_move["b"]),
        "kl": sum(kl_original(out[f"{z}_mean_{c}"], out[f"{z}_logvar_{c}"])
                  for c in "ab" for z in ("init", "movement")),
        "initial_pose_reconstruction": l1(out["frames_recon"], out["frames"]),  # 4 random frames per unit and copy
    }
    assert out["frames"].shape == (2 * B * 4, P)
    assert set(got) == set(want)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-5, atol=1e-6, msg=name)
    # the weighted sum at an iteration of the KL ramp: 0.01 / (1 + exp(-0.0005 (it - 15000)))
    it = 20000
    total, _ = weighted_sum(m.terms, "generator", out, m.model.networks, it)
    ramp = 0.01 / (1 + torch.exp(torch.tensor(-0.0005 * (it - 15000.0))))
    expected = sum(want[n] for n in want if n != "kl") + ramp * want["kl"]
    torch.testing.assert_close(total, expected, rtol=1e-5, atol=1e-6)


def test_decomposition_optimiser_and_clipping_groups(decomposition):
    m = decomposition
    opt = m.configure_optimizers()
    assert isinstance(opt, torch.optim.Adam)
    assert [g["network"] for g in opt.param_groups] == ["initp_enc", "initp_dec", "movement_enc", "stdp_dec"]
    assert all(g["lr"] == LR and g["betas"] == (0.9, 0.999) for g in opt.param_groups)
    assert {id(p) for g in opt.param_groups for p in g["params"]} == {id(p) for p in m.parameters()}
    g = torch.Generator().manual_seed(3)
    for p in m.parameters():
        p.grad = 10.0 * torch.randn(p.shape, generator=g)
    before = {n: torch.cat([p.grad.flatten() for p in getattr(m.model, n).parameters()]).norm() for n in
              ("initp_enc", "initp_dec", "movement_enc", "stdp_dec")}
    m.clip_step_gradients()
    after = {n: torch.cat([p.grad.flatten() for p in getattr(m.model, n).parameters()]).norm() for n in before}
    # clip_grad_norm_(net, 0.5) on the movement encoder and the pose decoder, each on its own
    assert float(after["movement_enc"]) == pytest.approx(0.5, rel=1e-3)
    assert float(after["stdp_dec"]) == pytest.approx(0.5, rel=1e-3)
    for n in ("initp_enc", "initp_dec"):
        assert float(after[n]) == pytest.approx(float(before[n]))
    m.zero_grad(set_to_none=True)


# -- composition -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def composition(paper):
    torch.manual_seed(0)
    return CompositionModule(to_container(paper.composition), decomposition_config=to_container(paper.decomposition),
                             style_config=to_container(paper.style), feature_dim=F_DIM,
                             class_names=["ballet", "hiphop", "zumba"], sequence_units=L, unit_frames=T,
                             pose_dim=P).train()


def sequences(seed: int = 4) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"poses": torch.randn(B, L, T, P, generator=g), "features": torch.randn(B, L * T, F_DIM, generator=g)}


def test_composition_terms_equal_the_original_formulas(composition):
    m = composition
    assert m.model.dance_enc.recurrent.hidden_size == 1024 and m.model.dance_enc.mean[0].out_features == 512
    batch = sequences()
    torch.manual_seed(5)
    out = m(batch, sample=True)
    units = batch["poses"].reshape(B * L, T, P)
    with torch.no_grad():
        movement_mean, movement_logvar = m.model.movement_enc(units)
        style = m.model.style_extractor.style_feature(batch["features"][:, :30])  # the first 2 s of the music
        z_init, _ = m.model.initp_enc(units[:, 0])
    audio = batch["features"].mean(dim=1)
    torch.testing.assert_close(out["style"], style)
    assert not out["movement_mean"].requires_grad  # the frozen movement encoder's codes are detached

    def codes(mean, logvar):  # the discriminator's view of the L codes: unit by unit, mean then log-variance
        return torch.cat([torch.cat([mean, logvar], 1).reshape(B, L, -1)[:, u] for u in range(L)], dim=1)

    real_z = torch.cat([out["dance_mean"], out["dance_logvar"]], 1)
    fake_z = torch.cat([out["music_mean"], out["music_logvar"]], 1)
    real_m = codes(out["dance_movement_mean"], out["dance_movement_logvar"])
    fake_m = codes(out["music_movement_mean"], out["music_movement_logvar"])
    zd, md, reg = m.model.zdance_dis, m.model.danceAud_dis, m.model.dance_reg
    generator = {
        "kl": kl_original(out["dance_mean"], out["dance_logvar"])
        + kl_original(out["dance_movement_mean"], out["dance_movement_logvar"]),
        "movement_reconstruction": l1(out["dance_movement_mean"], movement_mean)
        + l1(out["dance_movement_logvar"], movement_logvar),
        "pose_reconstruction": l1(m.model.stdp_dec(z_init, out["dance_movement_z"], T), units),
        "dance_code_alignment_generator": bce(zd(fake_z, audio), 1.0),
        "movement_alignment_generator": bce(md(fake_m, audio), 1.0),
    }
    weights = {"kl": 0.01, "movement_reconstruction": 1.0, "pose_reconstruction": 10.0,
               "dance_code_alignment_generator": 1.0, "movement_alignment_generator": 1.0}
    total, parts = weighted_sum(m.terms, "generator", out, m.model.networks, 0)
    assert set(parts) == set(generator)  # the style loss is not in the generator step, the music KL nowhere
    for name, value in generator.items():
        torch.testing.assert_close(parts[name], value.detach(), rtol=1e-5, atol=1e-6, msg=name)
    torch.testing.assert_close(total, sum(weights[n] * v for n, v in generator.items()), rtol=1e-5, atol=1e-6)

    dis = {k: v.detach() for k, v in out.items()}
    _, parts = weighted_sum(m.terms, "discriminator", dis, m.model.networks, 0)
    want = {"dance_code_alignment_discriminator": bce(zd(real_z, audio), 1.0) + bce(zd(fake_z, audio), 0.0),
            "movement_alignment_discriminator": bce(md(real_m, audio), 1.0) + bce(md(fake_m, audio), 0.0)}
    assert set(parts) == set(want)
    for name, value in want.items():
        torch.testing.assert_close(parts[name], value.detach(), rtol=1e-5, atol=1e-6, msg=name)

    _, parts = weighted_sum(m.terms, "regressor", out, m.model.networks, 0)
    want = F.mse_loss(reg(out["dance_z"]), style) + F.mse_loss(reg(out["music_z"]), style)
    torch.testing.assert_close(parts["style_alignment"], want.detach(), rtol=1e-5, atol=1e-6)

    music_kl = build_terms("composition", {"music_kl": LossTermConfig(weight=0.01)}, m.cfg)["music_kl"]
    torch.testing.assert_close(music_kl.compute("generator", out, m.model.networks),
                               kl_original(out["music_mean"], out["music_logvar"])
                               + kl_original(out["music_movement_mean"], out["music_movement_logvar"]))


def test_composition_optimisers_learning_rates_and_clipping_groups(composition):
    m = composition
    assert m.active_steps == ("discriminator", "generator", "regressor")
    opts = dict(zip(m.active_steps, m.configure_optimizers()))
    want = {
        "discriminator": {"danceAud_dis": LR, "zdance_dis": LR},
        "generator": {"dance_enc": LR, "dance_dec": LR, "audstyle_enc": LR, "stdp_dec": LR * 0.1},
        "regressor": {"dance_reg": LR, "dance_enc": LR, "audstyle_enc": LR, "stdp_dec": LR * 0.1},
    }
    for step, nets in want.items():
        opt = opts[step]
        assert isinstance(opt, torch.optim.Adam)
        got = {g["network"]: g["lr"] for g in opt.param_groups}
        assert got == pytest.approx(nets), step
        assert all(g["betas"] == (0.9, 0.999) for g in opt.param_groups)
        for group in opt.param_groups:
            assert {id(p) for p in group["params"]} == {id(p) for p in getattr(m.model, group["network"]).parameters()}
    trained = {id(p) for o in opts.values() for g in o.param_groups for p in g["params"]}
    for frozen in ("movement_enc", "initp_enc", "initp_dec", "style_extractor"):
        assert not any(id(p) in trained or p.requires_grad for p in getattr(m.model, frozen).parameters()), frozen

    # per-network clipping: every group (one network) to its own norm of 0.5
    opt = opts["generator"]
    g = torch.Generator().manual_seed(6)
    for group in opt.param_groups:
        for p in group["params"]:
            p.grad = 10.0 * torch.randn(p.shape, generator=g)
    clip_groups(opt, 0.5, "per_network")
    for group in opt.param_groups:
        norm = torch.cat([p.grad.flatten() for p in group["params"]]).norm()
        assert float(norm) == pytest.approx(0.5, rel=1e-3), group["network"]
    m.zero_grad(set_to_none=True)


def test_each_step_moves_only_its_own_networks_and_the_movement_encoder_never(paper):
    torch.manual_seed(0)
    m = CompositionModule(to_container(paper.composition), decomposition_config=to_container(paper.decomposition),
                          style_config=to_container(paper.style), feature_dim=F_DIM,
                          class_names=["ballet", "hiphop", "zumba"], sequence_units=L, unit_frames=T,
                          pose_dim=P)
    names = ("dance_enc", "dance_dec", "audstyle_enc", "stdp_dec", "movement_enc", "initp_enc", "initp_dec",
             "danceAud_dis", "zdance_dis", "dance_reg", "style_extractor")
    recorder = StepRecorder(names)
    fit_steps(m, sequences(), callbacks=[recorder])
    generators = {"dance_enc", "dance_dec", "audstyle_enc", "stdp_dec"}
    # discriminator step, generator step, style step; the style loss does not reach the pose decoder,
    # so the style optimiser leaves it where it is
    steps = [{"danceAud_dis", "zdance_dis"}, generators, {"dance_reg", "dance_enc", "audstyle_enc"}]
    assert recorder.moved() == steps
    assert recorder.with_grad == steps
    assert all(p.grad is None for p in m.model.movement_enc.parameters())  # its backward never ran
