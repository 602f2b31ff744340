"""Style extractor: original checkpoint layout, shapes at every preset, training, freezing, reports."""

import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, Dataset

from common.errors import D2MError
from experiments.presets import PRESETS
from lightning_modules.config import StyleExtractorConfig
from lightning_modules.networks import StyleExtractor
from lightning_modules.style_module import StyleExtractorModule, confusion_report

CLASSES = ["zumba", "ballet", "hiphop"]
IMPROVED_TINY = {"arch": "improved", "hidden": 16, "layers": 2, "style_dim": 8, "head_hidden": 8, "dropout": 0.2}


def typed(over: dict) -> StyleExtractorConfig:
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(StyleExtractorConfig), over))


def tiny_config(**over) -> dict:
    cfg = {k: v for k, v in PRESETS["tiny"]["style"].items() if k != "optim"}
    cfg.update(over)
    cfg["optim"] = {"lr": 1e-2}
    return cfg


class Windows(Dataset):
    """An easy separable task: each style shifts the feature frames by its own mean vector."""

    def __init__(self, n: int = 96, frames: int = 12, dim: int = 6, seed: int = 0):
        means = torch.randn(len(CLASSES), dim, generator=torch.Generator().manual_seed(99))
        g = torch.Generator().manual_seed(seed)
        self.label = torch.arange(n) % len(CLASSES)
        self.features = means[self.label][:, None, :] + torch.randn(n, frames, dim, generator=g)

    def __len__(self):
        return len(self.label)

    def __getitem__(self, i):
        return {"features": self.features[i], "label": self.label[i]}


def trainer(epochs: int) -> pl.Trainer:
    return pl.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)


def test_original_at_paper_size_matches_the_released_classifier_layout():
    net = StyleExtractor(28, 3, typed({}))
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert shapes == {
        "init_h": (1, 1, 30), "recurrent.weight_ih_l0": (90, 28), "recurrent.weight_hh_l0": (90, 30),
        "recurrent.bias_ih_l0": (90,), "recurrent.bias_hh_l0": (90,),
        "classifier.0.weight": (30, 30), "classifier.0.bias": (30,),
        "classifier.2.weight": (3, 30), "classifier.2.bias": (3,),
    }
    net.load_state_dict({k: torch.zeros(s) for k, s in shapes.items()}, strict=True)


def test_improved_architecture_is_wide_deep_projected_and_has_two_dropout_layers():
    net = StyleExtractor(28, 3, typed({"arch": "improved", "hidden": 512, "layers": 2, "dropout": 0.3}))
    assert net.recurrent.num_layers == 2 and net.recurrent.hidden_size == 512
    assert net.recurrent.dropout == pytest.approx(0.3)
    assert tuple(net.project[0].weight.shape) == (30, 512)
    assert sum(isinstance(m, torch.nn.Dropout) for m in net.classifier) == 2
    assert net.style_feature(torch.randn(2, 150, 28)).shape == (2, 30)


@pytest.mark.parametrize("preset", ["paper", "small", "tiny"])
@pytest.mark.parametrize("arch", ["original", "improved"])
def test_shapes_at_every_preset(preset, arch):
    over = {k: v for k, v in PRESETS[preset].get("style", {}).items() if k != "optim"}
    if arch == "improved":
        over.update(arch="improved", layers=2, dropout=0.1)
    cfg = typed(over)
    net = StyleExtractor(28, 3, cfg).eval()
    x = torch.randn(4, cfg.window, 28)
    assert net(x).shape == (4, 3)
    assert net.style_feature(x).shape == (4, cfg.style_dim)


def test_original_style_feature_must_be_the_hidden_state():
    with pytest.raises(D2MError, match="style_dim"):
        StyleExtractor(28, 3, typed({"hidden": 16, "style_dim": 30}))
    with pytest.raises(D2MError, match="unknown architecture"):
        StyleExtractor(28, 3, typed({"arch": "huge"}))


@pytest.mark.parametrize("over", [{}, IMPROVED_TINY], ids=["original", "improved"])
def test_both_architectures_train_and_beat_chance(over):
    torch.manual_seed(0)
    module = StyleExtractorModule(tiny_config(**over), feature_dim=6, class_names=CLASSES)
    t = trainer(epochs=8)
    t.fit(module, DataLoader(Windows(96), batch_size=16, shuffle=True), DataLoader(Windows(30, seed=1), batch_size=30))
    assert {"train/loss", "val/loss", "val/acc"} <= set(t.callback_metrics)
    t.test(module, DataLoader(Windows(60, seed=2), batch_size=16), verbose=False)
    report = module.test_report
    assert report["n_test"] == 60
    assert report["accuracy"] == pytest.approx(float(t.callback_metrics["test/acc"]), abs=1e-3)
    assert report["accuracy"] > 70.0, report  # chance is 33%


def test_style_feature_has_style_dim_numbers_and_is_deterministic_in_eval_mode():
    torch.manual_seed(0)
    module = StyleExtractorModule(tiny_config(**IMPROVED_TINY), feature_dim=6, class_names=CLASSES)
    x = torch.randn(5, 40, 6)
    module.train()
    assert not torch.equal(module.style_feature(x), module.style_feature(x))  # dropout is live in training
    module.eval()
    f = module.style_feature(x)
    assert f.shape == (5, 8) and module.style_dim == 8
    torch.testing.assert_close(module.style_feature(x), f, rtol=0, atol=0)
    paper = StyleExtractorModule({}, feature_dim=28, class_names=CLASSES).eval()
    assert paper.style_feature(torch.randn(2, 30, 28)).shape == (2, 30)


def test_a_frozen_extractor_gets_no_gradient_and_does_not_change():
    module = StyleExtractorModule(tiny_config(), feature_dim=6, class_names=CLASSES)
    module.freeze()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    downstream = torch.nn.Linear(module.style_dim, 1)
    opt = torch.optim.Adam(list(downstream.parameters()) + list(module.parameters()), lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        downstream(module.style_feature(torch.randn(4, 10, 6))).pow(2).mean().backward()
        opt.step()
    assert all(p.grad is None and not p.requires_grad for p in module.parameters())
    assert downstream.weight.grad is not None
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())
    assert not module.training


def test_confusion_report_rows_sum_to_100_percent():
    counts = torch.tensor([[8, 2, 0], [1, 6, 3], [0, 0, 5]])
    r = confusion_report(counts, CLASSES)
    for true in CLASSES:
        assert sum(r["confusion"][true].values()) == pytest.approx(100.0)
    assert r["confusion"]["zumba"]["ballet"] == pytest.approx(20.0)
    assert r["accuracy"] == pytest.approx(100.0 * 19 / 25)
    assert r["precision"]["hiphop"] == pytest.approx(100.0 * 5 / 8)
    assert r["recall"]["ballet"] == pytest.approx(60.0)
    assert r["n_test"] == 25
    empty = confusion_report(torch.tensor([[3, 0], [0, 0]]), ["a", "b"])  # class b never seen nor predicted
    assert empty["precision"]["b"] == 0.0 and sum(empty["confusion"]["b"].values()) == 0.0


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    module = StyleExtractorModule(tiny_config(**IMPROVED_TINY), feature_dim=6, class_names=CLASSES)
    t = trainer(epochs=1)
    t.fit(module, DataLoader(Windows(32), batch_size=16))
    t.save_checkpoint(tmp_path / "style.ckpt")
    loaded = StyleExtractorModule.load_from_checkpoint(tmp_path / "style.ckpt", map_location="cpu").eval()
    module.eval()
    assert loaded.class_names == CLASSES and loaded.cfg == module.cfg
    x = torch.randn(3, 20, 6)
    torch.testing.assert_close(loaded(x), module(x), rtol=0, atol=0)
    torch.testing.assert_close(loaded.style_feature(x), module.style_feature(x), rtol=0, atol=0)
