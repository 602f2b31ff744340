"""CompositionModule: switchable terms, the three optimisation steps, frozen parts, checkpoints."""

import itertools
import warnings

import pytest
import pytorch_lightning as pl
import torch
from composition_steps import StepRecorder, fit_steps
from torch.utils.data import DataLoader, Dataset

from common.errors import D2MError
from evaluation.generation import generate_dance
from experiments.presets import PRESETS
from lightning_modules.composition_module import CompositionModule
from lightning_modules.decomposition_module import DecompositionModule
from lightning_modules.style_module import StyleExtractorModule

ALIGNMENT = ("kl", "dance_code_alignment", "movement_alignment", "style_alignment")
OPTIONAL_NETS = {"dance_code_alignment": "zdance_dis", "movement_alignment": "danceAud_dis",
                 "style_alignment": "dance_reg"}
TINY = PRESETS["tiny"]
L, T, P, F = 3, 32, 28, 28


def make_module(enabled: dict[str, bool] | None = None, composition: dict | None = None, **kw) -> CompositionModule:
    losses = {name: {"enabled": on} for name, on in (enabled or {}).items()}
    config = {**TINY["composition"], "losses": losses, "optim": {**TINY["composition"]["optim"], "lr": 1e-2},
              **(composition or {})}
    return CompositionModule(config, TINY["decomposition"], TINY["style"], feature_dim=F,
                             class_names=["ballet", "hiphop", "zumba"], pose_mean=[100.0] * P,
                             pose_std=[20.0] * P, feature_mean=[0.0] * F, feature_std=[1.0] * F,
                             feature_spec={"fps": 15}, **kw)


def make_batch(b: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"poses": torch.randn(b, L, T, P, generator=g), "features": torch.randn(b, L * T, F, generator=g),
            "label": torch.randint(0, 3, (b,), generator=g)}


class RandomSequences(Dataset):
    def __init__(self, n: int = 8):
        self.items = [{k: v[0] for k, v in make_batch(1, seed=i).items()} for i in range(n)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def fit(module: CompositionModule, steps: int = 2) -> pl.Trainer:
    """`steps` training batches (Lightning's `max_steps` counts every optimiser's steps)."""
    trainer = pl.Trainer(max_steps=steps * module.optimizer_steps_per_batch, max_epochs=5, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0, limit_val_batches=1, log_every_n_steps=1, accelerator="cpu", devices=1)
    loader = DataLoader(RandomSequences(), batch_size=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, train_dataloaders=loader,
                    val_dataloaders=DataLoader(RandomSequences(4), batch_size=4))
    return trainer


def snapshot(module: CompositionModule, names) -> dict[str, torch.Tensor]:
    return {f"{n}.{k}": v.detach().clone() for n in names for k, v in getattr(module.model, n).state_dict().items()}


def changed(before: dict, module: CompositionModule) -> set[str]:
    now = {k: v for n in {k.split(".")[0] for k in before} for k, v in
           ((f"{n}.{kk}", vv) for kk, vv in getattr(module.model, n).state_dict().items())}
    return {k.split(".")[0] for k, v in before.items() if not torch.equal(v, now[k])}


@pytest.mark.parametrize("switches", list(itertools.product([True, False], repeat=4)),
                         ids=lambda s: "".join("1" if x else "0" for x in s))
def test_every_combination_of_alignment_terms_trains(switches):
    enabled = dict(zip(ALIGNMENT, switches))
    module = make_module(enabled)
    trainer = fit(module, steps=2)
    # Lightning counts each optimiser's step; the module says how many a batch takes
    assert trainer.global_step == 2 * module.optimizer_steps_per_batch == 2 * len(module.active_steps)
    assert module.batches_stepped == 2
    logged = set(trainer.callback_metrics)
    for term, on in enabled.items():
        keys = {k for k in logged if k.startswith(f"train/loss/{term}")}
        assert bool(keys) == on, (term, keys)
        if term in OPTIONAL_NETS:
            assert module.model.has_network(OPTIONAL_NETS[term]) == on
            assert hasattr(module.model, OPTIONAL_NETS[term]) == on
    for key in ("train/loss/movement_reconstruction", "train/loss/pose_reconstruction", "val/loss"):
        assert key in logged and torch.isfinite(trainer.callback_metrics[key])
    adversarial = enabled["dance_code_alignment"] or enabled["movement_alignment"]
    steps = ({"generator"} | ({"discriminator"} if adversarial else set())
             | ({"regressor"} if enabled["style_alignment"] else set()))
    assert set(module.active_steps) == steps
    assert len(module.configure_optimizers()) == len(steps)


def test_disabled_terms_leave_no_parameters_and_compute_nothing():
    full = make_module()
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    previous = count(full)
    for term, net in OPTIONAL_NETS.items():
        ablated = make_module({term: False})
        assert net not in dict(ablated.model.named_children())
        assert not any(k.startswith(f"model.{net}.") for k in ablated.state_dict())
        assert count(ablated) == previous - sum(p.numel() for p in getattr(full.model, net).parameters())
    bare = make_module(dict.fromkeys(ALIGNMENT, False))
    out = bare(make_batch(), sample=True)
    assert not any(k.startswith("music") for k in out)  # the music path costs nothing here
    assert "style" not in out
    assert {"pose_reconstruction", "dance_movement_mean", "movement_mean"} <= set(out)


def test_all_terms_off_is_a_clear_error():
    with pytest.raises(D2MError, match="every loss term"):
        make_module(dict.fromkeys([*ALIGNMENT, "movement_reconstruction", "pose_reconstruction"], False))


def test_generator_and_discriminator_steps_touch_only_their_own_networks():
    """Toggled optimisers: each step's backward reaches only its own player's weights."""
    torch.manual_seed(0)
    module = make_module()
    generators = ("dance_enc", "dance_dec", "audstyle_enc", "movement_enc", "stdp_dec")
    critics = ("zdance_dis", "danceAud_dis")
    everything = (*generators, *critics, "dance_reg", "style_extractor", "initp_enc", "initp_dec")
    recorder = StepRecorder(everything)
    fit_steps(module, make_batch(), callbacks=[recorder])
    # the tiny preset's joint style step: the regressor learns alone on detached codes
    assert recorder.moved() == [set(critics), set(generators), {"dance_reg"}]
    assert recorder.with_grad == [set(critics), set(generators), {"dance_reg"}]  # no critic backward in the
    assert len(set(recorder.optimisers)) == 3                                     # generator step, and so on


def test_finetuned_networks_learn_at_a_fraction_of_the_rate():
    module = make_module()
    gen = module.configure_optimizers()[module.active_steps.index("generator")]
    lrs = {g["network"]: g["lr"] for g in gen.param_groups}
    scaled = 1e-2 * module.cfg.finetune_lr_scale
    assert lrs == {"dance_enc": pytest.approx(1e-2), "dance_dec": pytest.approx(1e-2),
                   "audstyle_enc": pytest.approx(1e-2), "movement_enc": pytest.approx(scaled),
                   "stdp_dec": pytest.approx(scaled)}
    for group in gen.param_groups:
        assert {id(p) for p in group["params"]} == {id(p) for p in getattr(module.model, group["network"]).parameters()}
    in_any = {id(p) for o in module.configure_optimizers() for g in o.param_groups for p in g["params"]}
    for frozen in ("style_extractor", "initp_enc", "initp_dec"):
        assert not any(id(p) in in_any for p in getattr(module.model, frozen).parameters())


def test_a_zero_finetune_scale_freezes_the_movement_encoder_and_pose_decoder():
    finetuned = ("movement_enc", "stdp_dec")
    torch.manual_seed(0)
    module = make_module(composition={"finetune_lr_scale": 0.0})
    assert not any(p.requires_grad for n in finetuned for p in getattr(module.model, n).parameters())
    # the same model with those weights still asking for gradients: the other networks' updates must not change
    torch.manual_seed(0)
    reference = make_module(composition={"finetune_lr_scale": 0.0})
    for n in finetuned:
        getattr(reference.model, n).requires_grad_(True)
    watched = (*finetuned, "dance_enc", "dance_dec")
    before = snapshot(module, watched)
    batch = make_batch()
    for m in (module, reference):
        opts = dict(zip(m.active_steps, m.configure_optimizers()))
        assert [g["network"] for g in opts["generator"].param_groups] == ["dance_enc", "dance_dec", "audstyle_enc"]
        torch.manual_seed(1)
        fit_steps(m, batch)
    assert all(p.grad is None for n in finetuned for p in getattr(module.model, n).parameters())
    assert all(p.grad is not None for p in reference.model.stdp_dec.parameters())
    # a frozen movement encoder runs without a graph: no gradient even where its weights would accept one
    assert all(p.grad is None for p in reference.model.movement_enc.parameters())
    assert changed(before, module) == {"dance_enc", "dance_dec"}  # the pose loss still reaches dance_dec
    for name, value in reference.state_dict().items():
        torch.testing.assert_close(module.state_dict()[name], value, msg=name)

    before = snapshot(module, finetuned)
    fit(module, steps=2)
    assert all(p.grad is None and not p.requires_grad for n in finetuned for p in getattr(module.model, n).parameters())
    assert changed(before, module) == set()


def test_frozen_style_extractor_gets_no_gradient_and_stays_in_eval_mode():
    module = make_module()
    before = snapshot(module, ("style_extractor",))
    fit(module, steps=2)
    module.train()
    assert not module.model.style_extractor.training
    assert all(p.grad is None and not p.requires_grad for p in module.model.style_extractor.parameters())
    assert changed(before, module) == set()


def test_style_feature_reads_all_the_music_under_the_sequence():
    module = make_module()
    batch = make_batch(2)
    out = module(batch, sample=False)
    expected = module.model.style_extractor.style_feature(batch["features"])
    torch.testing.assert_close(out["style"], expected)
    cut = dict(batch, features=batch["features"][:, :30])
    assert not torch.allclose(module(cut, sample=False)["style"], expected)


def test_wrong_sequence_length_is_a_clear_error():
    module = make_module()
    batch = make_batch()
    batch["poses"] = batch["poses"][:, :2]
    with pytest.raises(D2MError, match="sequences of 3 units"):
        module(batch)["dance_mean"]


def test_load_upstream_copies_trained_weights(tmp_path):
    style = StyleExtractorModule(TINY["style"], feature_dim=F, class_names=["ballet", "hiphop", "zumba"])
    decomposition = DecompositionModule(TINY["decomposition"], pose_dim=P)
    with torch.no_grad():
        for p in [*style.parameters(), *decomposition.parameters()]:
            p.uniform_(-1, 1)
    torch.save({"state_dict": style.state_dict()}, tmp_path / "style.ckpt")
    torch.save({"state_dict": decomposition.state_dict()}, tmp_path / "decomposition.ckpt")
    module = make_module()
    module.load_upstream(tmp_path / "style.ckpt", tmp_path / "decomposition.ckpt")
    for k, v in style.net.state_dict().items():
        assert torch.equal(module.model.style_extractor.state_dict()[k], v)
    for name in ("initp_enc", "initp_dec", "movement_enc", "stdp_dec"):
        for k, v in getattr(decomposition.model, name).state_dict().items():
            assert torch.equal(getattr(module.model, name).state_dict()[k], v)
    wider = DecompositionModule({**TINY["decomposition"], "hidden": 24}, pose_dim=P)
    torch.save({"state_dict": wider.state_dict()}, tmp_path / "wider.ckpt")
    with pytest.raises(D2MError, match="does not fit"):
        module.load_upstream(tmp_path / "style.ckpt", tmp_path / "wider.ckpt")


def test_checkpoint_round_trip_generates_the_same_dance(tmp_path):
    module = make_module({"style_alignment": False})
    trainer = fit(module, steps=2)
    path = tmp_path / "composition.ckpt"
    trainer.save_checkpoint(path)
    again = CompositionModule.load_from_checkpoint(path, map_location="cpu")
    assert not again.model.has_network("dance_reg") and again.model.has_network("zdance_dis")
    assert again.hparams.feature_spec == {"fps": 15}
    torch.testing.assert_close(again.model.pose_std, module.model.pose_std)
    features = torch.randn(150, F)
    a = generate_dance(module.model, features, samples=2, generator=torch.Generator().manual_seed(3))
    b = generate_dance(again.model, features, samples=2, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_config_blocks_may_be_dataclasses_and_are_saved_as_plain_values():
    from lightning_modules.config import CompositionConfig, DecompositionConfig, StyleExtractorConfig

    blocks = {"config": CompositionConfig(**{k: v for k, v in TINY["composition"].items()
                                            if k not in ("optim", "losses")}),
              "decomposition_config": DecompositionConfig(**{k: v for k, v in TINY["decomposition"].items()
                                                            if k not in ("optim", "losses")}),
              "style_config": StyleExtractorConfig(arch="improved", hidden=8, style_dim=8, head_hidden=8)}
    module = CompositionModule(**blocks, feature_dim=F, class_names=["ballet", "hiphop", "zumba"])
    saved = module.hparams
    assert all(type(saved[k]) is dict for k in blocks)
    assert saved["style_config"]["layers"] == 2 and saved["style_config"]["window"] == 150  # the arch's sizes
    assert module.model.style_extractor.recurrent.num_layers == 2
    assert module.cfg == CompositionModule(saved["config"], saved["decomposition_config"], saved["style_config"],
                                           feature_dim=F, class_names=["ballet", "hiphop", "zumba"]).cfg
