"""trainer.overfit_batches reaches Lightning: a count of fixed batches, or off by default."""

import pytest

from experiments.config import load_config
from experiments.trainer import _overfit, build_trainer


@pytest.mark.parametrize(("value", "expected"), [("0", {}), ("1", {"overfit_batches": 1}),
                                                  ("3.0", {"overfit_batches": 3}),
                                                  ("0.25", {"overfit_batches": 0.25})])
def test_overfit_setting_is_a_batch_count_or_a_fraction(value, expected):
    cfg = load_config("tiny", [f"trainer.overfit_batches={value}"])
    assert _overfit(cfg) == expected


def test_the_trainer_overfits_one_batch_when_asked(tmp_path):
    cfg = load_config("tiny", ["trainer.overfit_batches=1", "logging.wandb=false"])
    trainer, _, _ = build_trainer(cfg, cfg.decomposition.optim, tmp_path, [], "val/loss", "min")
    assert trainer.overfit_batches == 1
    plain = load_config("tiny", ["logging.wandb=false"])
    trainer, _, _ = build_trainer(plain, plain.decomposition.optim, tmp_path, [], "val/loss", "min")
    assert trainer.overfit_batches == 0
