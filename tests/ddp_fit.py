"""Run one tiny training stage under DDP with two CPU (gloo) processes; rank 0 writes what happened.

    python tests/ddp_fit.py composition|decomposition OUT.json [key=value ...]

It goes through the stages' own Trainer (`experiments.trainer.build_trainer` with the module), so
the strategy and its `find_unused_parameters` are the ones a real run gets. Lightning's `ddp`
launcher starts the second process by running this script again.
"""

from __future__ import annotations

import json
import sys
import tempfile
import warnings
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

L, T, P, F = 3, 32, 28, 28


class Random(Dataset):
    def __init__(self, family: str, n: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for _ in range(n):
            if family == "composition":
                self.items.append({"poses": torch.randn(L, T, P, generator=g),
                                   "features": torch.randn(L * T, F, generator=g)})
            else:
                a = torch.randn(T, P, generator=g)
                self.items.append({"pose_a": a, "pose_b": a + 0.3 * torch.randn(1, P, generator=g)})

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def main(family: str, out: str, overrides: list[str]) -> None:
    from experiments.config import load_config, to_container
    from experiments.trainer import build_trainer

    cfg = load_config("tiny", ["trainer.strategy=ddp", "trainer.devices=2", "trainer.accelerator=cpu", *overrides])
    torch.manual_seed(0)
    if family == "composition":
        from lightning_modules.composition_module import CompositionModule

        module = CompositionModule(to_container(cfg.composition), decomposition_config=to_container(cfg.decomposition),
                                   style_config=to_container(cfg.style), feature_dim=F,
                                   class_names=["ballet", "hiphop", "zumba"], sequence_units=L, unit_frames=T)
    else:
        from lightning_modules.decomposition_module import DecompositionModule

        module = DecompositionModule(to_container(cfg.decomposition), pose_dim=P)
    optim = cfg[family].optim
    batch = int(optim.batch_size)
    with tempfile.TemporaryDirectory() as root, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer, _, _ = build_trainer(cfg, optim, Path(root), [], module.monitor, module.monitor_mode,
                                      manual_optimization=not module.automatic_optimization, module=module)
        trainer.fit(module, train_dataloaders=DataLoader(Random(family, 8 * batch, 1), batch_size=batch),
                    val_dataloaders=DataLoader(Random(family, 2 * batch, 2), batch_size=batch))
    if trainer.is_global_zero:
        loss = trainer.callback_metrics.get("train/loss")
        Path(out).write_text(json.dumps({
            "world_size": trainer.world_size, "global_step": trainer.global_step,
            "max_steps": int(optim.max_steps), "steps_per_batch": module.optimizer_steps_per_batch,
            "find_unused_parameters": trainer.strategy._ddp_kwargs.get("find_unused_parameters"),
            "module_find_unused": module.find_unused_parameters,
            "loss": None if loss is None else float(loss), "val_loss": float(trainer.callback_metrics["val/loss"]),
        }))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
