"""Learning-rate schedules: known values of the multiplier, validation, and the module's wiring."""

import math

import pytest
import torch

from common.errors import D2MError
from lightning_modules.config import OptimConfig
from lightning_modules.schedules import lr_scale, scheduler_config


def test_constant_with_warmup_ramps_linearly_then_holds():
    assert [lr_scale("constant", s, 100, warmup_steps=4) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert lr_scale("constant", 50, 0) == 1.0


def test_cosine_runs_from_peak_to_final_scale():
    assert lr_scale("cosine", 0, 100) == pytest.approx(1.0)
    assert lr_scale("cosine", 50, 100) == pytest.approx(0.5)
    assert lr_scale("cosine", 100, 100, final_scale=0.1) == pytest.approx(0.1)
    assert lr_scale("cosine", 500, 100, final_scale=0.1) == pytest.approx(0.1)  # past the end it stays
    # warm-up of 10 steps, then half a cosine over the remaining 90
    assert lr_scale("cosine", 4, 100, warmup_steps=10) == pytest.approx(0.5)
    assert lr_scale("cosine", 55, 100, warmup_steps=10) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))


def test_bad_schedule_names_and_missing_budget_fail_clearly():
    with pytest.raises(D2MError, match="unknown schedule 'linear'"):
        lr_scale("linear", 0, 10)
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(D2MError, match="max_steps > 0"):
        scheduler_config(opt, OptimConfig(lr_schedule="cosine", max_steps=-1))


def test_scheduler_config_drives_the_optimiser_rate():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=0.2)
    assert scheduler_config(opt, OptimConfig()) is None
    entry = scheduler_config(opt, OptimConfig(lr=0.2, lr_schedule="cosine", max_steps=4, lr_final_scale=0.0))
    assert entry["interval"] == "step"
    rates = []
    for _ in range(5):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        entry["scheduler"].step()
    assert rates == pytest.approx([0.2 * lr_scale("cosine", s, 4) for s in range(5)])
    assert rates[-1] == pytest.approx(0.0, abs=1e-12)


def test_decomposition_module_returns_a_per_step_scheduler_only_when_asked():
    from experiments.presets import PRESETS
    from lightning_modules.decomposition_module import DecompositionModule

    cfg = {k: v for k, v in PRESETS["tiny"]["decomposition"].items() if k != "optim"}
    plain = DecompositionModule({**cfg, "optim": {"lr": 1e-3}}).configure_optimizers()
    assert isinstance(plain, torch.optim.Adam)
    scheduled = DecompositionModule({**cfg, "optim": {"lr": 1e-3, "lr_schedule": "cosine", "max_steps": 10,
                                                      "lr_warmup_steps": 2}}).configure_optimizers()
    assert scheduled["lr_scheduler"]["interval"] == "step"
    assert scheduled["optimizer"].param_groups[0]["lr"] == pytest.approx(0.5e-3)  # first warm-up step
