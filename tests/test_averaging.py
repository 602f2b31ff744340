"""optim.ema_decay: the averaged weights are what the checkpoint, the test and the key hold."""

import pytest
import pytorch_lightning as pl
import torch
import yaml
from omegaconf import OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint
from torch import nn

from common.errors import D2MError
from experiments.averaging import EMAWeights, averaging_callbacks
from experiments.config import load_config
from experiments.stage_graph import STAGES, stage_key, stage_yaml

DECAY = 0.8


class Line(pl.LightningModule):
    """One linear layer fitted to fixed data; records its weight after every optimiser step."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Linear(3, 1)
        self.seen_by_test: torch.Tensor | None = None
        self.after_step: list[torch.Tensor] = []

    def training_step(self, batch, _):
        x, y = batch
        return ((self.net(x) - y) ** 2).mean()

    def on_train_batch_end(self, *_):
        self.after_step.append(self.net.weight.detach().clone())

    def test_step(self, batch, _):
        self.seen_by_test = self.net.weight.detach().clone()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def loader(batch_size=4):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(16, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]])
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch_size)


def fit(tmp_path, steps, batch_size=4, ckpt_path=None):
    """A fit with the averaging callback; checkpoints every 3 steps, written mid-fit as a stage's are."""
    module = Line()
    saver = ModelCheckpoint(dirpath=str(tmp_path), filename="{step}", every_n_train_steps=3, save_top_k=-1)
    trainer = pl.Trainer(max_steps=steps, callbacks=[EMAWeights(DECAY), saver], logger=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path))
    trainer.fit(module, train_dataloaders=loader(batch_size), ckpt_path=ckpt_path)
    return module, trainer


def averaged_weight(path):
    return torch.load(path, weights_only=False)["state_dict"]["net.weight"]


def test_the_average_follows_its_formula_and_is_what_the_checkpoint_and_the_test_hold(tmp_path):
    module, trainer = fit(tmp_path, steps=6)
    raw = module.after_step  # the callback runs after the module's hook: these are the raw weights
    assert len(raw) == 6
    ema = raw[0].clone()  # torch's AveragedModel starts from the weights after the first step
    for w in raw[1:]:
        ema = DECAY * ema + (1 - DECAY) * w
    assert not torch.allclose(ema, raw[-1], atol=1e-4)  # the average lags the raw weights
    torch.testing.assert_close(averaged_weight(tmp_path / "step=6.ckpt"), ema)
    # a stage tests its best checkpoint on the trainer that fitted it: the averaged weights, not the raw ones
    trainer.test(module, dataloaders=loader(), ckpt_path=str(tmp_path / "step=6.ckpt"))
    torch.testing.assert_close(module.seen_by_test, ema)


def test_a_resumed_fit_continues_both_the_raw_and_the_averaged_weights(tmp_path):
    whole, _ = fit(tmp_path, steps=6, batch_size=16)  # one batch an epoch: a resume sees the same batches
    averaged = averaged_weight(tmp_path / "step=6.ckpt")
    (tmp_path / "step=6.ckpt").unlink()
    resumed, _ = fit(tmp_path, steps=6, batch_size=16, ckpt_path=str(tmp_path / "step=3.ckpt"))
    assert len(resumed.after_step) == 3
    torch.testing.assert_close(resumed.after_step[-1], whole.after_step[-1])
    torch.testing.assert_close(averaged_weight(tmp_path / "step=6.ckpt"), averaged)
    assert not torch.allclose(averaged, whole.after_step[-1], atol=1e-4)


@pytest.mark.parametrize("decay", [-0.1, 1.0, 1.5])
def test_a_decay_outside_zero_to_one_is_named(decay):
    with pytest.raises(D2MError, match="optim.ema_decay"):
        averaging_callbacks(decay)


def test_off_adds_no_callback_and_leaves_every_key_and_on_changes_the_trained_stages():
    base = load_config("tiny", [])
    assert averaging_callbacks(0.0) == []
    assert "ema_decay" not in yaml.safe_load(stage_yaml(base, "decomposition"))["decomposition"]["optim"]
    before = OmegaConf.create(OmegaConf.to_container(base))  # untyped, so a key can be deleted
    for block in ("style", "decomposition", "composition"):
        del before[block].optim["ema_decay"]  # the schema as it was before the option existed
    assert all(stage_key(before, s) == stage_key(base, s) for s in STAGES)
    on = load_config("tiny", ["decomposition.optim.ema_decay=0.99"])
    assert {s for s in STAGES if stage_key(on, s) != stage_key(base, s)} == {"decomposition", "composition",
                                                                           "evaluation"}
