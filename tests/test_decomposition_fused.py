"""The fused decomposition forward pass against a per-copy computation written out here, in float64.

`DecompositionModule` encodes the two jittered copies as one batch and runs the pose decoder once
over the decode groups its enabled terms read. The reference below encodes each copy on its own
and decodes each unit on its own, then sums the terms by hand; outputs, the total loss and every
parameter gradient must agree to float64 tolerance, with codes at their means and with sampled
codes (the noise is made a fixed function of the mean, so both layouts draw the same numbers).
"""

from __future__ import annotations

import pytest
import torch

from lightning_modules.decomposition_module import DecompositionModule, decode_plan
from lightning_modules.losses import weighted_sum
from lightning_modules.losses.decomposition_kl import gaussian_kl

N, T, P = 5, 32, 28
SIZES = {"hidden": 24, "movement_dim": 12, "init_dim": 4, "init_hidden": 8, "initial_pose_frames": 3}
# every term at a plain weight (no KL warm-up), so each one's gradient is large enough to compare
WEIGHTS = {"pose_reconstruction": 1.0, "cross_reconstruction": 0.7, "movement_distance": 0.3, "kl": 0.2,
           "initial_pose_reconstruction": 0.9}


def make_module(off: str | None = None, **extra) -> DecompositionModule:
    losses = {name: {"weight": w, "warmup_slope": 0.0, "enabled": name != off} for name, w in WEIGHTS.items()}
    torch.manual_seed(0)
    return DecompositionModule({**SIZES, **extra, "losses": losses}).double()


def make_batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(4)
    pose_a = torch.randn(N, T, P, generator=g, dtype=torch.float64)
    return {"pose_a": pose_a, "pose_b": pose_a + 0.3 * torch.randn(N, 1, P, generator=g, dtype=torch.float64)}


def fixed_noise(mean: torch.Tensor, **kwargs) -> torch.Tensor:
    """Stands in for `torch.randn_like`: a function of each element alone, so rows may move freely."""
    return torch.cos(37.0 * mean.detach())


def reference(module: DecompositionModule, batch, sample: bool, seed: int):
    """Each copy through each encoder on its own, each decoded unit on its own, the terms by hand."""
    nets = module.model.networks

    def code(mean, logvar):
        return mean + fixed_noise(mean) * torch.exp(0.5 * logvar) if sample else mean

    out = dict(batch)
    for c in "ab":
        poses = batch[f"pose_{c}"]
        mean, logvar = nets["movement_enc"](poses)
        out.update({f"movement_mean_{c}": mean, f"movement_logvar_{c}": logvar, f"z_movement_{c}": code(mean, logvar)})
        mean, logvar = nets["initp_enc"](poses[:, 0])
        out.update({f"init_mean_{c}": mean, f"init_logvar_{c}": logvar, f"z_init_{c}": code(mean, logvar)})
    for name, (i, m) in {"recon_a": "aa", "recon_b": "bb", "cross_a": "ab", "cross_b": "ba"}.items():
        out[name] = nets["stdp_dec"](out[f"z_init_{i}"], out[f"z_movement_{m}"], T)
    poses = torch.cat([batch["pose_a"], batch["pose_b"]])
    k = module.cfg.initial_pose_frames
    idx = torch.randint(0, T, (2 * N, k), generator=torch.Generator().manual_seed(seed))
    frames = torch.stack([poses[r, idx[r]] for r in range(2 * N)]).reshape(2 * N * k, P)
    mean, logvar = nets["initp_enc"](frames)
    out.update(frames=frames, frames_mean=mean, frames_logvar=logvar,
               frames_recon=nets["initp_dec"](code(mean, logvar)))

    def l1(x, y):
        return (x - y).abs().mean()

    # the paper's objective (the schema's defaults): the copies summed, sampled codes compared
    values = {
        "pose_reconstruction": l1(out["recon_a"], out["pose_a"]) + l1(out["recon_b"], out["pose_b"]),
        "cross_reconstruction": l1(out["cross_a"], out["pose_a"]) + l1(out["cross_b"], out["pose_b"]),
        "movement_distance": l1(out["z_movement_a"], out["z_movement_b"]),
        "kl": sum(gaussian_kl(out[f"{z}_mean_{c}"], out[f"{z}_logvar_{c}"]) for c in "ab"
                  for z in ("init", "movement")),
        "initial_pose_reconstruction": l1(out["frames_recon"], out["frames"]),
    }
    total = sum(WEIGHTS[name] * values[name] for name in module.terms)
    return total, out


def gradients(module: DecompositionModule, total: torch.Tensor) -> dict[str, torch.Tensor]:
    module.zero_grad(set_to_none=True)
    total.backward()
    return {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("sample", [False, True], ids=["means", "sampled"])
@pytest.mark.parametrize("off", [None, "pose_reconstruction", "cross_reconstruction"])
def test_fused_outputs_and_gradients_equal_the_per_copy_computation(off, sample, monkeypatch):
    monkeypatch.setattr(torch, "randn_like", fixed_noise)
    module = make_module(off)
    assert module.cfg.fused_pairs  # the default layout
    batch = make_batch()
    calls: dict[str, list[int]] = {"movement_enc": [], "initp_enc": [], "stdp_dec": []}
    hooks = [getattr(module.model, name).register_forward_hook(lambda m, args, y, name=name: calls[name].append(
        args[0].shape[0])) for name in calls]
    try:
        out = module(batch, sample=sample, generator=torch.Generator().manual_seed(7))
        total, parts = weighted_sum(module.terms, "generator", out, module.model.networks, 0)
    finally:
        for h in hooks:
            h.remove()
    got = gradients(module, total)

    # one encoder call over both copies; one decoder call over exactly the groups the enabled terms read
    groups = [g for g, term in (("recon", "pose_reconstruction"), ("cross", "cross_reconstruction")) if term != off]
    assert calls["movement_enc"] == [2 * N]
    assert calls["initp_enc"] == [2 * N, 2 * N * SIZES["initial_pose_frames"]]  # first frames, then random frames
    assert calls["stdp_dec"] == [2 * N * len(groups)]
    decoded = {f"{g}_{c}" for g in ("recon", "cross") for c in "ab"} & set(out)
    assert decoded == {f"{g}_{c}" for g in groups for c in "ab"}

    ref_total, ref_out = reference(module, batch, sample, seed=7)
    want = gradients(module, ref_total)
    torch.testing.assert_close(total, ref_total)
    for name in set(out):
        torch.testing.assert_close(out[name], ref_out[name], msg=name)
    assert set(got) == set(want) == {n for n, _ in module.named_parameters()}
    for name, grad in want.items():
        torch.testing.assert_close(got[name], grad, msg=name)
    assert torch.equal(out["z_movement_b"], out["movement_mean_b"]) != sample


@pytest.mark.parametrize("off", [None, "pose_reconstruction", "cross_reconstruction"])
def test_fused_and_per_copy_layouts_of_the_module_agree(off, monkeypatch):
    monkeypatch.setattr(torch, "randn_like", fixed_noise)
    fused, plain = make_module(off), make_module(off, fused_pairs=False, fast_recurrence=False)
    plain.load_state_dict(fused.state_dict())
    batch = make_batch()
    results = []
    for module in (fused, plain):
        out = module(batch, sample=True, generator=torch.Generator().manual_seed(2))
        total, _ = weighted_sum(module.terms, "generator", out, module.model.networks, 0)
        results.append((total, out, gradients(module, total)))
    (total, out, grads), (ref_total, ref_out, ref_grads) = results
    torch.testing.assert_close(total, ref_total)
    assert set(out) == set(ref_out)
    for name in set(ref_out):
        torch.testing.assert_close(out[name], ref_out[name], msg=name)
    for name, grad in ref_grads.items():
        torch.testing.assert_close(grads[name], grad, msg=name)


def test_the_forward_pass_decodes_what_is_asked_in_one_call():
    module = make_module("pose_reconstruction").eval()
    assert module.decodes == ("cross",)
    assert decode_plan(module.terms) == ("cross",) and make_module().decodes == ("recon", "cross")
    batch = make_batch()
    sizes = []
    hook = module.model.stdp_dec.register_forward_hook(lambda m, args, y: sizes.append(args[0].shape[0]))
    try:
        train = module(batch, sample=False)  # what the terms read: the cross group only
        assert "recon_a" not in train and {"cross_a", "cross_b"} <= set(train)
        out = module(batch, wants=module.eval_reads, sample=False)  # the pixel error reads recon_a too
    finally:
        hook.remove()
    assert sizes == [2 * N, 4 * N]
    _, ref = reference(module, batch, sample=False, seed=0)
    for name in ("cross_a", "cross_b", "recon_a", "recon_b"):
        torch.testing.assert_close(out[name], ref[name], msg=name)


def test_per_copy_layout_calls_each_network_once_per_copy_and_decode():
    module = make_module(fused_pairs=False)
    counts = {"movement_enc": 0, "stdp_dec": 0}
    hooks = [getattr(module.model, name).register_forward_hook(
        lambda m, args, y, name=name: counts.__setitem__(name, counts[name] + 1)) for name in counts]
    try:
        out = module(make_batch(), sample=True)
        weighted_sum(module.terms, "generator", out, module.model.networks, 0)
    finally:
        for h in hooks:
            h.remove()
    assert counts == {"movement_enc": 2, "stdp_dec": 4}
