"""Stand-ins for the original release's checkpoints, built from DESIGN.md section 9 alone.

The names and shapes below are copied from that table (not from d2m-lab's networks), so a test that
imports these files checks d2m-lab against the documented format. Values are random, scaled like a
trained network's (weights about 1/sqrt(fan-in), LayerNorm gains near 1), so that every layer's
output depends on every parameter and a mixed-up key would change the result.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch

H = 1024  # GRU width of the decomposition and composition networks
M = 512  # z_movement
D = 512  # z_dance
P = 28  # pose numbers
A = 28  # audio features per frame
S = 30  # style feature


def _linear(prefix: str, n_in: int, n_out: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.weight": (n_out, n_in), f"{prefix}.bias": (n_out,)}


def _norm(prefix: str, n: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.weight": (n,), f"{prefix}.bias": (n,)}


def _gru(prefix: str, n_in: int, hidden: int, bidirectional: bool = False) -> dict[str, tuple[int, ...]]:
    out = {}
    for suffix in ("", "_reverse") if bidirectional else ("",):
        out.update({f"{prefix}.weight_ih_l0{suffix}": (3 * hidden, n_in),
                    f"{prefix}.weight_hh_l0{suffix}": (3 * hidden, hidden),
                    f"{prefix}.bias_ih_l0{suffix}": (3 * hidden,),
                    f"{prefix}.bias_hh_l0{suffix}": (3 * hidden,)})
    return out


def _discriminator(code_dim: int) -> dict[str, tuple[int, ...]]:
    return {**_linear("movementd.0", code_dim, 1024), **_norm("movementd.1", 1024),
            **_linear("movementd.3", 1024, 512), **_norm("movementd.4", 512),
            **_linear("movementd.6", 512, 256), **_norm("movementd.7", 256),
            **_linear("movementd.9", 256, 30),
            **_linear("audd.0", A, 30), **_norm("audd.1", 30), **_linear("audd.3", 30, 30), **_norm("audd.4", 30),
            **_linear("jointd.0", 60, 1)}


SHAPES: dict[str, dict[str, tuple[int, ...]]] = {
    "initp_enc": {**_linear("enc.0", P, 64), **_norm("enc.1", 64), **_linear("enc.3", 64, 64), **_norm("enc.4", 64),
                  **_linear("mean.0", 64, 10), **_linear("std.0", 64, 10)},
    "initp_dec": {**_linear("dec.0", 10, 64), **_norm("dec.1", 64), **_linear("dec.3", 64, 64), **_norm("dec.4", 64),
                  **_linear("dec.6", 64, P)},
    "movement_enc": {"init_h": (2, 1, H), **_gru("recurrent", P, H, bidirectional=True),
                     **_linear("mean.0", 2 * H, M), **_linear("std.0", 2 * H, M)},
    "stdp_dec": {**_linear("z2init.0", 10 + M, H), **_gru("recurrent", M, H), **_linear("pose_g.0", H, H),
                 **_norm("pose_g.1", H), **_linear("pose_g.3", H, P)},
    "dance_enc": {"init_h": (1, 1, H), **_gru("recurrent", 2 * M, H), **_linear("mean.0", H, D),
                  **_linear("std.0", H, D)},
    "dance_dec": {**_linear("z2init.0", D, H), **_gru("recurrent", D, H), **_linear("movement_g.0", H, H),
                  **_norm("movement_g.1", H), **_linear("mean.0", H, M), **_linear("std.0", H, M)},
    "audstyle_enc": {**_linear("enc.0", 2 * S, 64), **_norm("enc.1", 64), **_linear("enc.3", 64, 128),
                     **_norm("enc.4", 128), **_linear("mean.0", 128, D), **_linear("std.0", 128, D)},
    "dance_reg": {**_linear("main.0", D, 512), **_norm("main.1", 512), **_linear("main.3", 512, 256),
                  **_norm("main.4", 256), **_linear("main.6", 256, 128), **_norm("main.7", 128),
                  **_linear("main.9", 128, S)},
    "danceAud_dis": _discriminator(3 * 2 * M),
    "zdance_dis": _discriminator(2 * D),
    "aud_3cls": {"init_h": (1, 1, S), **_gru("recurrent", A, S), **_linear("classifier.0", S, S),
                 **_linear("classifier.2", S, 3)},
}
STAGE1 = ("initp_enc", "initp_dec", "movement_enc", "stdp_dec")
STAGE2 = ("dance_enc", "dance_dec", "audstyle_enc", "danceAud_dis", "zdance_dis", "dance_reg", "stdp_dec",
          "movement_enc")


def _layer_norm_keys(shapes: dict[str, tuple[int, ...]]) -> set[str]:
    """1-D weights are LayerNorm gains (Linear weights are 2-D, GRU weights are named weight_*)."""
    return {k for k, s in shapes.items() if k.endswith(".weight") and len(s) == 1}


def random_state(module: str, gen: torch.Generator) -> dict[str, torch.Tensor]:
    shapes = SHAPES[module]
    gains = _layer_norm_keys(shapes)
    state = {}
    for key, shape in shapes.items():
        if key in gains:
            value = 1.0 + 0.2 * torch.randn(shape, generator=gen)
        elif key.replace(".bias", ".weight") in gains:  # LayerNorm shift
            value = 0.1 * torch.randn(shape, generator=gen)
        elif key == "init_h":
            value = 0.5 * torch.randn(shape, generator=gen)
        else:  # Linear and GRU weights and biases: uniform within 1/sqrt(fan-in), PyTorch's default range
            if ".recurrent." in f".{key}":
                fan_in = shape[0] // 3  # GRU: the hidden width
            else:
                fan_in = shapes[key.replace(".bias", ".weight")][1]
            value = (torch.rand(shape, generator=gen) * 2 - 1) / fan_in ** 0.5
        state[key] = value
    return state


def placeholder_state(module: str) -> dict[str, torch.Tensor]:
    """Right names and shapes, one stored number each: a few-KB file for the refusal tests."""
    return {k: torch.zeros(1).expand(s) for k, s in SHAPES[module].items()}


def optimiser_state(states: dict[str, torch.Tensor]) -> dict:
    """Shaped like an Adam state dict: the kind of extra entry the original files carry."""
    tensors = list(states.values())[:2]
    return {"state": {i: {"step": 10, "exp_avg": torch.zeros_like(t), "exp_avg_sq": torch.zeros_like(t)}
                      for i, t in enumerate(tensors)},
            "param_groups": [{"lr": 2e-4, "betas": (0.5, 0.999), "eps": 1e-8, "weight_decay": 0.0,
                              "amsgrad": False, "params": list(range(len(tensors)))}]}


def build_states(seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    """Random weights for every original network. Stage2's movement_enc and stdp_dec differ from Stage1's
    (the original fine-tunes them during composition), under the keys `stage2_movement_enc` etc."""
    gen = torch.Generator().manual_seed(seed)
    states = {name: random_state(name, gen) for name in SHAPES}
    states["stage2_movement_enc"] = random_state("movement_enc", gen)
    states["stage2_stdp_dec"] = random_state("stdp_dec", gen)
    return states


def as_state_dict(state: dict[str, torch.Tensor]) -> OrderedDict:
    """As `nn.Module.state_dict()` returns it: an OrderedDict with a `_metadata` attribute, which the file keeps."""
    out = OrderedDict(state)
    out._metadata = OrderedDict({"": {"version": 1}})
    return out


def stage1_dict(states: dict[str, dict[str, torch.Tensor]]) -> dict:
    out = {name: as_state_dict(states[name]) for name in STAGE1}
    out.update(ep=120, total_it=95000, opt=optimiser_state(states["movement_enc"]))
    return out


def stage2_dict(states: dict[str, dict[str, torch.Tensor]]) -> dict:
    out = {name: as_state_dict(states[name]) for name in STAGE2 if name not in ("movement_enc", "stdp_dec")}
    out["movement_enc"] = as_state_dict(states["stage2_movement_enc"])
    out["stdp_dec"] = as_state_dict(states["stage2_stdp_dec"])
    return out


def write_original(folder: Path, states: dict[str, dict[str, torch.Tensor]]) -> dict[str, Path]:
    """Stage1 and aud_3cls in PyTorch's legacy (pre-1.6) format, as a 2019 release would have saved them,
    Stage2 in the current zip format: the importer must read both."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"decomp": folder / "Stage1.ckpt", "comp": folder / "Stage2.ckpt", "style": folder / "aud_3cls.ckpt"}
    torch.save(stage1_dict(states), paths["decomp"], _use_new_zipfile_serialization=False)
    torch.save(stage2_dict(states), paths["comp"])
    torch.save(as_state_dict(states["aud_3cls"]), paths["style"], _use_new_zipfile_serialization=False)
    return paths


def write_placeholders(folder: Path) -> dict[str, Path]:
    """Tiny files with the documented names and shapes (one number each), for tests that must be refused."""
    folder.mkdir(parents=True, exist_ok=True)
    states = {name: placeholder_state(name) for name in SHAPES}
    states["stage2_movement_enc"] = states["movement_enc"]
    states["stage2_stdp_dec"] = states["stdp_dec"]
    paths = {"decomp": folder / "Stage1.ckpt", "comp": folder / "Stage2.ckpt", "style": folder / "aud_3cls.ckpt"}
    torch.save(stage1_dict(states), paths["decomp"])
    torch.save(stage2_dict(states), paths["comp"])
    torch.save(as_state_dict(states["aud_3cls"]), paths["style"])
    return paths
