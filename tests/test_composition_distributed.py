"""The composition GAN and the decomposition VAE under DDP (two gloo processes), bf16-mixed and CUDA.

DDP runs go through the stages' Trainer in a subprocess (tests/ddp_fit.py): the module declares
whether the strategy must look for unused parameters (always for the GAN, whose players each leave
the others without a gradient; for the VAE only when an ablated cell leaves a network unreached),
and a wrong choice fails the run. `16-mixed` is refused for the GAN with a clear message.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from composition_steps import fit_steps

from common.errors import D2MError
from experiments.presets import PRESETS
from lightning_modules.composition_module import CompositionModule
from lightning_modules.decomposition_module import DecompositionModule

ROOT = Path(__file__).resolve().parents[1]
TINY = PRESETS["tiny"]
L, T, P, F = 3, 32, 28, 28


def composition(**overrides) -> CompositionModule:
    torch.manual_seed(0)
    return CompositionModule({**TINY["composition"], **overrides}, TINY["decomposition"], TINY["style"],
                             feature_dim=F, class_names=["ballet", "hiphop", "zumba"])


def sequences(b: int = 4) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"poses": torch.randn(b, L, T, P, generator=g), "features": torch.randn(b, L * T, F, generator=g)}


def run_ddp(tmp_path: Path, family: str, *overrides: str) -> dict:
    out = tmp_path / f"{family}.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "ddp_fit.py"), family, str(out), *overrides],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("family, overrides, find_unused", [
    ("composition", (), True),
    ("composition", ("composition.losses.style_alignment.enabled=false",), True),
    ("decomposition", (), False),  # every network gets a gradient: no search for unused parameters
    ("decomposition", ("decomposition.losses.initial_pose_reconstruction.enabled=false",), True),
], ids=["gan", "gan-no-style", "vae", "vae-no-initial-pose"])
def test_trains_under_ddp_with_two_gloo_processes(tmp_path, family, overrides, find_unused):
    got = run_ddp(tmp_path, family, *overrides)
    assert got["world_size"] == 2
    assert got["find_unused_parameters"] is find_unused and got["module_find_unused"] is find_unused
    # `max_steps` counts batches; Lightning's global step counts every optimiser's step
    assert got["global_step"] == got["max_steps"] * got["steps_per_batch"]
    assert math.isfinite(got["loss"]) and math.isfinite(got["val_loss"])


def test_composition_trains_under_bf16_mixed():
    module = composition()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    trainer = fit_steps(module, sequences(), batches=2, precision="bf16-mixed")
    assert trainer.precision == "bf16-mixed"
    assert trainer.global_step == 2 * module.optimizer_steps_per_batch
    assert math.isfinite(float(trainer.callback_metrics["train/loss"]))
    moved = {k.split(".")[1] for k, v in module.state_dict().items() if not torch.equal(v, before[k])}
    assert {"dance_enc", "dance_dec", "audstyle_enc", "zdance_dis", "danceAud_dis", "dance_reg"} <= moved
    assert all(v.dtype == torch.float32 for v in module.state_dict().values() if v.is_floating_point())


def test_decomposition_trains_under_bf16_mixed():
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader

    torch.manual_seed(0)
    module = DecompositionModule(TINY["decomposition"], pose_dim=P)
    g = torch.Generator().manual_seed(0)
    a = torch.randn(8, T, P, generator=g)
    items = [{"pose_a": a[i], "pose_b": a[i] + 0.3} for i in range(8)]
    trainer = pl.Trainer(max_steps=2, accelerator="cpu", devices=1, precision="bf16-mixed", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         limit_val_batches=0)
    trainer.fit(module, train_dataloaders=DataLoader(items, batch_size=4))
    assert trainer.global_step == 2 and math.isfinite(float(trainer.callback_metrics["train/loss"]))


def test_16_mixed_is_refused_for_the_gan_with_a_clear_message():
    module = composition()
    module._trainer = SimpleNamespace(precision="16-mixed")  # CPU Trainers turn 16-mixed into bf16
    with pytest.raises(D2MError, match="16-mixed is not supported.*bf16-mixed"):
        module.setup("fit")
    module._trainer = SimpleNamespace(precision="bf16-mixed")
    module.setup("fit")
    module._trainer = None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_tiny_training_step_on_cuda():
    module = composition()
    trainer = fit_steps(module, sequences(), batches=2, precision="bf16-mixed", accelerator="cuda")
    assert module.device.type == "cuda" and trainer.global_step == 2 * module.optimizer_steps_per_batch
    assert math.isfinite(float(trainer.callback_metrics["train/loss"]))
    with pytest.raises(D2MError, match="16-mixed"):
        fit_steps(composition(), sequences(), precision="16-mixed", accelerator="cuda")
