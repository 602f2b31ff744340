"""DecompositionModule: switchable loss terms, the code swap, KL warm-up, pixel errors, checkpoints."""

import math

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from common.errors import D2MError
from experiments.presets import PRESETS
from lightning_modules.decomposition_module import DecompositionModule, joint_error_px, joint_speed_px
from lightning_modules.losses import build_terms, needed_networks
from lightning_modules.losses.decomposition_kl import gaussian_kl

TERMS = ["pose_reconstruction", "cross_reconstruction", "movement_distance", "kl", "initial_pose_reconstruction"]
# forward-pass products that only one term reads: switching the term off must leave them uncomputed
OWN_PRODUCTS = {
    "cross_reconstruction": {"cross_a", "cross_b"},
    "initial_pose_reconstruction": {"frames", "frames_recon"},
}


def tiny_config(lr: float = 1e-3, **losses) -> dict:
    cfg = {k: v for k, v in PRESETS["tiny"]["decomposition"].items() if k != "optim"}
    cfg["optim"] = {"lr": lr}  # the small preset's rate; the default 2e-4 needs hundreds of steps
    cfg["losses"] = {name: dict(spec) for name, spec in losses.items()}
    return cfg


class Units(Dataset):
    """Smooth 'dances' and a copy shifted by a constant offset, like the jittered pairs.

    Poses move in a low-dimensional space (a few sinusoids mixed into the 28 coordinates by a fixed
    matrix, as joints of a body move together), so a tiny model can learn them in a few dozen steps.
    """

    def __init__(self, n: int = 48, seed: int = 0):
        mix = torch.randn(5, 28, generator=torch.Generator().manual_seed(123)) * 0.5
        g = torch.Generator().manual_seed(seed)
        t = torch.linspace(0, 2 * math.pi, 32)[None, :, None]
        freq = torch.randint(1, 3, (n, 1, 3), generator=g).float()
        phase = torch.rand(n, 1, 3, generator=g) * 2 * math.pi
        latent = torch.cat([torch.sin(freq * t + phase), torch.randn(n, 1, 2, generator=g).expand(-1, 32, -1)], -1)
        self.a = latent @ mix
        shift = torch.randn(n, 1, 2, generator=g).repeat(1, 1, 14) * 0.3
        self.b = self.a + shift

    def __len__(self):
        return len(self.a)

    def __getitem__(self, i):
        return {"pose_a": self.a[i], "pose_b": self.b[i], "label": 0}


class Recorder(pl.Callback):
    def __init__(self):
        self.losses, self.metrics = [], []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))
        self.metrics.append({k: float(v) for k, v in trainer.callback_metrics.items()})


def fit(module, steps: int, n: int = 48, batch_size: int = 8, val: bool = False):
    rec = Recorder()
    trainer = pl.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, gradient_clip_val=0.5,
                         callbacks=[rec], limit_val_batches=2 if val else 0, num_sanity_val_steps=0)
    loader = DataLoader(Units(n), batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    trainer.fit(module, loader, DataLoader(Units(16, seed=1), batch_size=8) if val else None)
    return trainer, rec


@pytest.mark.parametrize("off", TERMS)
def test_each_term_switched_off_still_trains_and_is_neither_logged_nor_computed(off):
    torch.manual_seed(0)
    module = DecompositionModule(tiny_config(**{off: {"enabled": False}}))
    assert off not in module.terms and len(module.terms) == len(TERMS) - 1
    assert needed_networks(module.terms) == set()  # decomposition terms need no optional network
    full = DecompositionModule(tiny_config())
    assert sum(p.numel() for p in module.parameters()) == sum(p.numel() for p in full.parameters())

    before = {k: v.clone() for k, v in module.state_dict().items()}
    trainer, rec = fit(module, steps=3)
    logged = set(trainer.callback_metrics)
    assert f"train/loss/{off}" not in logged
    assert {f"train/loss/{t}" for t in TERMS if t != off} <= logged
    assert all(math.isfinite(x) for x in rec.losses)
    assert any(not torch.equal(before[k], v) for k, v in module.state_dict().items())

    # the shared forward pass computes only what the enabled terms read
    data = Units(4)
    out = module({"pose_a": data.a, "pose_b": data.b}, sample=True)
    for t in module.terms.values():
        t.compute("generator", out, module.model.networks)
    for term, products in OWN_PRODUCTS.items():
        if term == off:
            assert not (products & set(out))
        else:
            assert products <= set(out)


def test_all_terms_off_or_unknown_term_is_a_clear_error():
    with pytest.raises(D2MError, match="every loss term is switched off"):
        DecompositionModule(tiny_config(**{t: {"enabled": False} for t in TERMS}))
    with pytest.raises(D2MError, match="unknown decomposition loss term 'typo'"):
        DecompositionModule(tiny_config(typo={"weight": 1.0}))
    with pytest.raises(D2MError, match="decomposition.hiden"):
        DecompositionModule({"hiden": 16})


def test_losses_fall_over_a_few_dozen_steps_at_the_tiny_preset():
    torch.manual_seed(0)
    kl_now = {"weight": 0.01, "warmup_center": 0.0, "warmup_slope": 0.0}
    module = DecompositionModule(tiny_config(lr=3e-3, kl=kl_now))
    _, rec = fit(module, steps=40, n=32, batch_size=32)  # one fixed batch: the fall is not batch noise
    first, last = rec.metrics[:5], rec.metrics[-5:]
    for key in ("train/loss", "train/loss/pose_reconstruction", "train/loss/cross_reconstruction",
                "train/loss/initial_pose_reconstruction", "train/loss/movement_distance"):
        a = sum(m[key] for m in first) / len(first)
        b = sum(m[key] for m in last) / len(last)
        assert b < 0.9 * a, f"{key}: {a:.4f} -> {b:.4f}"


@pytest.mark.parametrize("fused", [True, False], ids=["fused-pairs", "per-copy"])
def test_cross_reconstruction_decodes_one_copys_initial_pose_with_the_other_copys_movement(fused):
    torch.manual_seed(0)
    module = DecompositionModule({**tiny_config(), "fused_pairs": fused}).eval()
    data = Units(6)
    batch = {"pose_a": data.a, "pose_b": torch.flip(data.a, dims=[0])}  # two different units
    calls = []
    dec = module.model.stdp_dec
    hook = dec.register_forward_hook(lambda m, args, y: calls.append((args[0], args[1])))
    try:
        out = module(batch, sample=False)
        cross_value = module.terms["cross_reconstruction"].compute("generator", out, module.model.networks)
    finally:
        hook.remove()
    # per copy: one call per decoded unit (recon_a, recon_b, cross_a, cross_b); fused: one call for both groups
    assert len(calls) == (1 if fused else 4)
    n = data.a.shape[0]
    z_init = torch.cat([zi for zi, _ in calls])[-2 * n:]  # the cross rows come last in the fused batch
    z_movement = torch.cat([zm for _, zm in calls])[-2 * n:]
    assert torch.equal(z_init[:n], out["init_mean_a"]) and torch.equal(z_movement[:n], out["movement_mean_b"])
    assert torch.equal(z_init[n:], out["init_mean_b"]) and torch.equal(z_movement[n:], out["movement_mean_a"])
    expected = 0.5 * ((dec(out["init_mean_a"], out["movement_mean_b"]) - batch["pose_a"]).abs().mean()
                      + (dec(out["init_mean_b"], out["movement_mean_a"]) - batch["pose_b"]).abs().mean())
    torch.testing.assert_close(cross_value, expected)
    own = module.terms["pose_reconstruction"].compute("generator", out, module.model.networks)
    assert not torch.allclose(cross_value, own)  # would be equal if the codes were not swapped


def test_kl_warmup_follows_the_original_sigmoid_and_the_global_step():
    kl = build_terms("decomposition", {"kl": DecompositionModule(tiny_config()).cfg.losses["kl"]})["kl"]
    assert kl.weight_at(15000) == pytest.approx(0.005)
    assert kl.weight_at(0) == pytest.approx(0.01 / (1 + math.exp(7.5)))
    assert kl.weight_at(30000) == pytest.approx(0.01 / (1 + math.exp(-7.5)))
    assert kl.weight_at(0) < 1e-5 < kl.weight_at(10000) < kl.weight_at(20000) < 0.01

    module = DecompositionModule(tiny_config(kl={"weight": 1.0, "warmup_center": 3.0, "warmup_slope": 2.0}))
    _, rec = fit(module, steps=6)
    logged = [m["train/weight/kl"] for m in rec.metrics]
    assert logged == pytest.approx([1.0 / (1 + math.exp(-2.0 * (it - 3.0))) for it in range(6)], rel=1e-5)


def test_gaussian_kl_is_zero_at_the_prior_and_positive_elsewhere():
    z = torch.zeros(4, 3)
    assert float(gaussian_kl(z, z)) == pytest.approx(0.0)
    # unit means, unit variances: 0.5 per code dimension, summed over the 3 dimensions (the original) or averaged
    assert float(gaussian_kl(z + 1.0, z)) == pytest.approx(1.5)
    assert float(gaussian_kl(z + 1.0, z, "mean")) == pytest.approx(0.5)
    assert float(gaussian_kl(z, z + 1.0)) > 0
    with pytest.raises(D2MError, match="kl_reduction"):
        gaussian_kl(z, z, "max")


def test_pixel_errors_un_normalise_and_measure_joint_distance():
    mean, std = torch.full((28,), 100.0), torch.full((28,), 10.0)
    target = torch.zeros(2, 32, 28)
    pred = target.clone()
    pred[..., 0::2] += 0.3  # 3 px in x
    pred[..., 1::2] += 0.4  # 4 px in y
    torch.testing.assert_close(joint_error_px(pred, target, mean, std), torch.full((2,), 5.0))


def test_joint_speed_is_the_mean_joint_step_in_pixels():
    mean, std = torch.zeros(28), torch.full((28,), 10.0)
    poses = torch.zeros(2, 5, 28)
    poses[0, :, 0::2] = torch.arange(5.0).unsqueeze(1) * 0.3  # 3 px a frame in x, every joint
    torch.testing.assert_close(joint_speed_px(poses, mean, std), torch.tensor([3.0, 0.0]))


def test_validation_and_test_report_pixel_errors_and_first_pose_baseline():
    torch.manual_seed(0)
    module = DecompositionModule(tiny_config(), pose_mean=[200.0] * 28, pose_std=[40.0] * 28)
    trainer, _ = fit(module, steps=4, n=32, val=True)  # exactly one epoch, so validation runs
    assert {"val/loss", "val/recon_px"} <= set(trainer.callback_metrics)
    trainer.test(module, DataLoader(Units(16, seed=2), batch_size=8), verbose=False)
    report = module.test_report
    assert set(report) == {"recon_px", "first_pose_px", "n_test", "recon_speed_px", "real_speed_px"}
    assert report["n_test"] == 16
    data = Units(16, seed=2)
    real = (data.a * module.pose_std + module.pose_mean).reshape(16, data.a.shape[1], 14, 2)
    real_speed = float((real[:, 1:] - real[:, :-1]).norm(dim=-1).mean())
    assert report["real_speed_px"] == pytest.approx(real_speed, rel=1e-5)
    assert float(trainer.callback_metrics["test/speed_ratio"]) == pytest.approx(
        report["recon_speed_px"] / real_speed, rel=1e-5)
    assert float(trainer.callback_metrics["test/recon_ratio"]) == pytest.approx(
        report["recon_px"] / report["first_pose_px"], rel=1e-5)
    first = joint_error_px(data.a[:, :1].expand_as(data.a), data.a, module.pose_mean, module.pose_std)
    assert report["first_pose_px"] == pytest.approx(float(first.mean()), rel=1e-5)
    assert report["recon_px"] == pytest.approx(float(trainer.callback_metrics["test/recon_px"]), rel=1e-5)
    assert report["first_pose_px"] == pytest.approx(float(trainer.callback_metrics["test/first_pose_px"]), rel=1e-5)


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    # statistics arrive from the DataModules as numpy arrays; the checkpoint must still reload
    module = DecompositionModule(tiny_config(kl={"weight": 0.02}), pose_mean=np.ones(28, dtype=np.float32),
                                 pose_std=np.full(28, 2.0, dtype=np.float32))
    trainer, _ = fit(module, steps=3)
    path = tmp_path / "decomp.ckpt"
    trainer.save_checkpoint(path)
    loaded = DecompositionModule.load_from_checkpoint(path, map_location="cpu")
    assert loaded.cfg == module.cfg and loaded.cfg.losses["kl"].weight == 0.02
    torch.testing.assert_close(loaded.pose_std, module.pose_std)
    poses = Units(4).a
    module.eval()
    loaded.eval()
    torch.testing.assert_close(loaded.model.reconstruct(poses), module.model.reconstruct(poses), rtol=0, atol=0)
    for name in ("initp_enc", "initp_dec", "movement_enc", "stdp_dec"):
        a, b = getattr(module.model, name).state_dict(), getattr(loaded.model, name).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
