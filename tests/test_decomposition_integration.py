"""Both analysis-phase modules on the built-in synthetic data, through the real DataModules."""

import importlib.util
import math

import pytest
import pytorch_lightning as pl
from omegaconf import OmegaConf

from datamodules.config import DataConfig
from experiments.presets import PRESETS
from lightning_modules.decomposition_module import DecompositionModule
from lightning_modules.style_module import StyleExtractorModule

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("datamodules.synth") is None,
    reason="datamodules.synth (the synthetic dataset the tiny_dataset fixture builds) is not available",
)


def _trainer(steps: int) -> pl.Trainer:
    return pl.Trainer(max_steps=steps, limit_val_batches=2, limit_test_batches=4, accelerator="cpu",
                      logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, num_sanity_val_steps=0, gradient_clip_val=0.5)


def test_style_and_decomposition_train_and_report_on_synthetic_data(tiny_dataset):
    from datamodules import build_datamodule

    data_cfg = OmegaConf.merge(OmegaConf.structured(DataConfig),
                               {"root": str(tiny_dataset), "source": "canonical"})
    tiny = PRESETS["tiny"]

    style_cfg = {k: v for k, v in tiny["style"].items() if k != "optim"}
    dm = build_datamodule("style", data_cfg, root=tiny_dataset, batch_size=8, seed=0,
                          window=style_cfg.get("window", 30))
    style = StyleExtractorModule(style_cfg, feature_dim=dm.feature_dim, class_names=list(dm.class_names))
    t = _trainer(4)
    t.fit(style, datamodule=dm)
    t.test(style, datamodule=dm, verbose=False)
    report = style.test_report
    assert report["n_test"] > 0 and set(report["confusion"]) == set(dm.class_names)
    for row in report["confusion"].values():
        assert sum(row.values()) == pytest.approx(100.0) or sum(row.values()) == 0.0

    dm = build_datamodule("units", data_cfg, root=tiny_dataset, batch_size=8, seed=0)
    decomp_cfg = {k: v for k, v in tiny["decomposition"].items() if k != "optim"}
    decomp = DecompositionModule(decomp_cfg, pose_dim=28, pose_mean=dm.pose_mean, pose_std=dm.pose_std)
    t = _trainer(4)
    t.fit(decomp, datamodule=dm)
    t.test(decomp, datamodule=dm, verbose=False)
    r = decomp.test_report
    assert r["n_test"] > 0 and math.isfinite(r["recon_px"]) and r["first_pose_px"] > 0
