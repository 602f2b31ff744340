"""A prototype of a faster decomposition step, timed by the bench next to the module's own step.

`FusedDecompositionOutputs` keeps the maths of `DecompositionModule` (the same outputs and
gradients to float tolerance, checked in tests/test_bench.py) and changes only how the work is laid
out: the two jittered copies go through the movement encoder as one batch of 2N, and the four
decodes (recon_a, recon_b, cross_a, cross_b) through the pose decoder as one batch of 4N. Every
sample's recurrence is independent of the others', so only the matrix shapes change: on one CPU
core a (64 x 1024) @ (1024 x 3072) product runs at about 80% of the matmul peak and a (256 x 1024)
one at about 95%, and each recurrent step is one set of operations instead of two or four, which
matters most when threads wait for each other on a busy machine.

`fused_decomposition_stepper` is a plain-loop step (as `bench_measure.plain_stepper`) on that layout.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from lightning_modules.decomposition_module import DecompositionOutputs
from lightning_modules.losses import weighted_sum

__all__ = ["FusedDecompositionOutputs", "fused_decomposition_stepper", "fused_outputs"]


def _reparameterise(mean: torch.Tensor, logvar: torch.Tensor, sample: bool) -> torch.Tensor:
    if not sample:
        return mean
    return mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)


class FusedDecompositionOutputs(DecompositionOutputs):
    """`DecompositionOutputs` with the pair encoded as one batch and the decodes run as one batch.

    `decodes` lists the decode groups the enabled terms read ("recon", "cross"); asking for any one
    of their outputs decodes all of them at once, so a switched-off term still costs nothing.
    """

    def __init__(self, nets, batch, sample, initial_pose_frames, generator=None,
                 decodes: tuple[str, ...] = ("recon", "cross")):
        super().__init__(nets, batch, sample, initial_pose_frames, generator)
        self.decodes = decodes

    def _movement(self, c: str) -> None:
        n = self["pose_a"].shape[0]
        mean, logvar = self.nets["movement_enc"](torch.cat([self["pose_a"], self["pose_b"]], dim=0))
        for i, copy in enumerate("ab"):
            m, lv = mean[i * n:(i + 1) * n], logvar[i * n:(i + 1) * n]
            self._values.update({f"movement_mean_{copy}": m, f"movement_logvar_{copy}": lv,
                                 f"z_movement_{copy}": _reparameterise(m, lv, self.sample)})

    def _all_decodes(self) -> None:
        plan = []
        if "recon" in self.decodes:
            plan += [("recon_a", "a", "a"), ("recon_b", "b", "b")]
        if "cross" in self.decodes:
            plan += [("cross_a", "a", "b"), ("cross_b", "b", "a")]
        z_init = torch.cat([self[f"z_init_{i}"] for _, i, _ in plan], dim=0)
        z_movement = torch.cat([self[f"z_movement_{m}"] for _, _, m in plan], dim=0)
        out = self._decode(z_init, z_movement).chunk(len(plan), dim=0)
        self._values.update({name: o for (name, _, _), o in zip(plan, out)})

    def _recon(self, c: str) -> None:
        if "recon" in self.decodes:
            self._all_decodes()
        else:
            super()._recon(c)

    def _cross(self, c: str) -> None:
        if "cross" in self.decodes:
            self._all_decodes()
        else:
            super()._cross(c)


def fused_outputs(module, batch: Mapping[str, torch.Tensor], sample: bool,
                  generator: torch.Generator | None = None) -> FusedDecompositionOutputs:
    """The fused forward pass of a `DecompositionModule`, decoding only what its enabled terms read."""
    decodes = tuple(g for g, term in (("recon", "pose_reconstruction"), ("cross", "cross_reconstruction"))
                    if term in module.terms)
    return FusedDecompositionOutputs(module.networks, batch, sample, module.cfg.initial_pose_frames, generator,
                                     decodes=decodes)


def fused_decomposition_stepper(module):
    """A plain-loop decomposition step on the fused layout: losses, backward, clipping, one Adam step."""
    opt = module.configure_optimizers()
    clip = float(module.cfg.optim.grad_clip)
    params = [p for g in opt.param_groups for p in g["params"]]

    def step(batch, it):
        out = fused_outputs(module, batch, sample=True)
        total, _ = weighted_sum(module.terms, "generator", out, module.networks, it)
        opt.zero_grad(set_to_none=True)
        total.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        return total.detach()

    return step
