"""The two models as plain modules, without Lightning: what their forward passes compute and hold."""

import pytest
import torch

from common.errors import D2MError
from experiments.presets import PRESETS
from lightning_modules.composition_module import CompositionModule
from lightning_modules.config import CompositionConfig, DecompositionConfig, StyleExtractorConfig, typed
from lightning_modules.decomposition_module import DecompositionModule
from lightning_modules.networks.composition_gan import PRODUCED, CompositionGAN
from lightning_modules.networks.decomposition_vae import OUTPUTS, DecompositionVAE

TINY = PRESETS["tiny"]
L, T, P, F = 3, 32, 28, 28


def vae(**changes) -> DecompositionVAE:
    torch.manual_seed(0)
    return DecompositionVAE(typed(DecompositionConfig, {**TINY["decomposition"], **changes}, "decomposition"), P)


def gan(composition: dict | None = None, **kw) -> CompositionGAN:
    torch.manual_seed(0)
    return CompositionGAN(typed(CompositionConfig, {**TINY["composition"], **(composition or {})}, "composition"),
                          typed(DecompositionConfig, TINY["decomposition"], "decomposition"),
                          typed(StyleExtractorConfig, TINY["style"], "style"), feature_dim=F, num_classes=3,
                          pose_dim=P, sequence_units=L, unit_frames=T, **kw)


def pairs(n: int = 4) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    a = torch.randn(n, T, P, generator=g)
    return {"pose_a": a, "pose_b": a + 0.1 * torch.randn(n, T, P, generator=g)}


def sequences(b: int = 2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    return {"poses": torch.randn(b, L, T, P, generator=g), "features": torch.randn(b, L * T, F, generator=g)}


def test_vae_computes_only_what_is_wanted():
    model = vae().train()
    calls = {n: 0 for n in model.networks}
    for name, net in model.networks.items():
        net.register_forward_hook(lambda m, args, y, name=name: calls.__setitem__(name, calls[name] + 1))
    out = model(pairs(), wants={"z_movement_a"})
    assert set(out) == {"pose_a", "pose_b", "movement_mean_a", "movement_logvar_a", "z_movement_a",
                        "movement_mean_b", "movement_logvar_b", "z_movement_b"}
    assert calls == {"initp_enc": 0, "initp_dec": 0, "movement_enc": 1, "stdp_dec": 0}  # one fused call
    everything = model(pairs())
    assert set(everything) == {"pose_a", "pose_b", *OUTPUTS}
    assert calls["stdp_dec"] == 1  # all four decoded units in one fused call


@pytest.mark.parametrize("fused", [True, False])
def test_vae_in_eval_mode_takes_means_and_reconstruct_is_its_own_decode(fused):
    model = vae(fused_pairs=fused).eval()
    batch = pairs()
    out = model(batch, wants={"recon_a", "cross_b"})
    assert torch.equal(out["z_movement_a"], out["movement_mean_a"]) and torch.equal(out["z_init_b"], out["init_mean_b"])
    torch.testing.assert_close(model.reconstruct(batch["pose_a"]), out["recon_a"], rtol=1e-5, atol=1e-6)
    sampled = model(batch, wants={"z_movement_a"}, sample=True)
    assert not torch.equal(sampled["z_movement_a"], sampled["movement_mean_a"])


def test_the_decomposition_system_holds_one_model_under_model():
    module = DecompositionModule(TINY["decomposition"], pose_dim=P)
    assert isinstance(module.model, DecompositionVAE)
    assert set(module.state_dict()) == {f"model.{k}" for k in module.model.state_dict()}
    # the system asks for what the terms read plus the pixel error's recon_a: names of the model's inputs or outputs
    assert module.eval_reads <= OUTPUTS | {"pose_a", "pose_b"} and "recon_a" in module.eval_reads


def test_gan_computes_only_what_is_wanted_and_means_in_eval():
    model = gan().eval()
    out = model(sequences(), wants={"dance_z"})
    assert {"dance_mean", "dance_z", "movement_mean"} <= set(out)
    assert not any(k.startswith(("music", "pose_", "style")) for k in out)
    assert torch.equal(out["dance_z"], out["dance_mean"])
    everything = model(sequences())
    assert set(everything) == {"unit_poses", "features", "audio", *PRODUCED}
    with pytest.raises(KeyError, match="no 'recon_a'"):
        model(sequences(), wants={"recon_a"})


def test_gan_freezes_its_upstream_and_keeps_the_extractor_in_eval_mode():
    model = gan({"finetune_movement_encoder": False}, optional=("zdance_dis",))
    assert model.has_network("zdance_dis") and not model.has_network("dance_reg") and not hasattr(model, "dance_reg")
    model.train()
    assert model.training and not model.style_extractor.training
    frozen = ("style_extractor", "initp_enc", "initp_dec")
    assert not any(p.requires_grad for n in frozen for p in getattr(model, n).parameters())
    assert model.finetuned == ("stdp_dec",)  # the movement encoder stays frozen (the original's choice)
    assert not any(p.requires_grad for p in model.movement_enc.parameters())
    assert all(p.requires_grad for p in model.stdp_dec.parameters())
    out = model(sequences(), wants={"movement_mean"})
    assert not out["movement_mean"].requires_grad  # a frozen movement encoder runs without a graph
    tuned = gan()  # the tiny preset fine-tunes it
    assert tuned.finetuned == ("movement_enc", "stdp_dec")
    assert tuned(sequences(), wants={"movement_mean"})["movement_mean"].requires_grad


def test_gan_carries_the_statistics_and_refuses_a_wrong_length():
    model = gan(statistics={"pose_std": [20.0] * P, "feature_mean": [1.0] * F})
    assert torch.equal(model.pose_std, torch.full((P,), 20.0)) and torch.equal(model.pose_mean, torch.zeros(P))
    assert torch.equal(model.feature_mean, torch.ones(F)) and torch.equal(model.feature_std, torch.ones(F))
    assert not any(k in model.state_dict() for k in ("pose_std", "feature_mean"))  # rebuilt from hyper-parameters
    with pytest.raises(D2MError, match="feature_std must have 28 numbers, got 3"):
        gan(statistics={"feature_std": [1.0, 2.0, 3.0]})


def test_the_composition_system_builds_the_same_model_as_the_model_alone():
    torch.manual_seed(0)
    module = CompositionModule(TINY["composition"], TINY["decomposition"], TINY["style"], feature_dim=F,
                               class_names=["ballet", "hiphop", "zumba"])
    alone = gan()
    assert set(module.state_dict()) == {f"model.{k}" for k in alone.state_dict()}
    for key, value in alone.state_dict().items():  # same construction order: same initial weights
        assert torch.equal(module.state_dict()[f"model.{key}"], value), key
    module.eval()
    batch = sequences()
    got = module(batch, wants={"pose_reconstruction"})
    want = alone.eval()(batch, wants={"pose_reconstruction"})
    torch.testing.assert_close(got["pose_reconstruction"], want["pose_reconstruction"], rtol=0, atol=0)


def test_systems_take_a_dataclass_a_node_or_a_dict_and_save_plain_values():
    import json

    from omegaconf import OmegaConf

    from lightning_modules.config import plain

    cfg = typed(DecompositionConfig, TINY["decomposition"], "decomposition")
    systems = [DecompositionModule(block, pose_dim=P, pose_std=torch.full((P,), 2.0))
               for block in (cfg, OmegaConf.structured(cfg), plain(cfg))]
    for system in systems:
        assert system.cfg == cfg and system.model.cfg == cfg
        saved = dict(system.hparams)
        assert type(saved["config"]) is dict and saved["config"] == plain(cfg)
        assert json.loads(json.dumps(saved)) == saved  # nothing but plain values (the tensor became a list)
    with pytest.raises(D2MError, match=r"decomposition\.hiden"):
        DecompositionModule({"hiden": 8}, pose_dim=P)
