"""The composition networks: original parameter names and shapes, code layouts, optional networks."""

import pytest
import torch

from lightning_modules.config import CompositionConfig
from lightning_modules.networks.composition import (
    OPTIONAL_NETWORKS,
    CodeDiscriminator,
    DanceDecoder,
    build_composition_networks,
    flatten_codes,
    join_codes,
)

LN = "LN"  # a LayerNorm: `weight` and `bias` of the given width


def _linear(i, o):
    return {"weight": (o, i), "bias": (o,)}


def _expand(spec: dict) -> dict[str, tuple]:
    """{'enc.0': Linear(28,64) as (28, 64), 'enc.1': 64 (LayerNorm), 'init_h': (1,1,H)} -> name -> shape."""
    out = {}
    for name, value in spec.items():
        if isinstance(value, int):
            out[f"{name}.weight"], out[f"{name}.bias"] = (value,), (value,)
        elif name.endswith("init_h"):
            out[name] = value
        elif isinstance(value, dict):
            out.update({f"{name}.{k}": v for k, v in value.items()})
        else:
            out.update({f"{name}.{k}": v for k, v in _linear(*value).items()})
    return out


def _gru(prefix, inp, hidden):
    return {f"{prefix}.weight_ih_l0": (3 * hidden, inp), f"{prefix}.weight_hh_l0": (3 * hidden, hidden),
            f"{prefix}.bias_ih_l0": (3 * hidden,), f"{prefix}.bias_hh_l0": (3 * hidden,)}


# DESIGN.md section 9, at paper size (movement codes 512, z_dance 512, style feature 30, 28 features).
PAPER = {
    "dance_enc": {**_expand({"init_h": (1, 1, 1024), "mean.0": (1024, 512), "std.0": (1024, 512)}),
                  **_gru("recurrent", 1024, 1024)},
    "dance_dec": {**_expand({"z2init.0": (512, 1024), "movement_g.0": (1024, 1024), "movement_g.1": 1024,
                             "mean.0": (1024, 512), "std.0": (1024, 512)}),
                  **_gru("recurrent", 512, 1024)},
    "audstyle_enc": _expand({"enc.0": (60, 64), "enc.1": 64, "enc.3": (64, 128), "enc.4": 128,
                             "mean.0": (128, 512), "std.0": (128, 512)}),
    "dance_reg": _expand({"main.0": (512, 512), "main.1": 512, "main.3": (512, 256), "main.4": 256,
                          "main.6": (256, 128), "main.7": 128, "main.9": (128, 30)}),
    "danceAud_dis": _expand({"movementd.0": (3072, 1024), "movementd.1": 1024, "movementd.3": (1024, 512),
                             "movementd.4": 512, "movementd.6": (512, 256), "movementd.7": 256,
                             "movementd.9": (256, 30), "audd.0": (28, 30), "audd.1": 30, "audd.3": (30, 30),
                             "audd.4": 30, "jointd.0": (60, 1)}),
    "zdance_dis": _expand({"movementd.0": (1024, 1024), "movementd.1": 1024, "movementd.3": (1024, 512),
                           "movementd.4": 512, "movementd.6": (512, 256), "movementd.7": 256,
                           "movementd.9": (256, 30), "audd.0": (28, 30), "audd.1": 30, "audd.3": (30, 30),
                           "audd.4": 30, "jointd.0": (60, 1)}),
}


def test_paper_size_names_and_shapes_match_the_original():
    with torch.device("meta"):  # shapes only: nothing is allocated
        nets = build_composition_networks(CompositionConfig(), movement_dim=512, style_dim=30, feature_dim=28,
                                          units=3)
    assert set(nets.keys()) == set(PAPER)
    for name, expected in PAPER.items():
        got = {k: tuple(v.shape) for k, v in nets[name].state_dict().items()}
        assert got == expected, name


def tiny_cfg(**kw) -> CompositionConfig:
    base = dict(dance_dim=8, hidden=16, noise_dim=4, music_hidden=[8, 8], disc_hidden=[16, 8, 8, 8],
                audio_disc_hidden=8, regressor_hidden=[8, 8, 8])
    base.update(kw)
    return CompositionConfig(**base)


def test_optional_networks_are_built_only_on_request():
    cfg = tiny_cfg()
    none = build_composition_networks(cfg, movement_dim=6, style_dim=5, feature_dim=7, units=3, optional=())
    assert set(none.keys()) == {"dance_enc", "dance_dec", "audstyle_enc"}
    every = build_composition_networks(cfg, movement_dim=6, style_dim=5, feature_dim=7, units=3)
    assert set(every.keys()) == {"dance_enc", "dance_dec", "audstyle_enc", *OPTIONAL_NETWORKS}
    with pytest.raises(KeyError):
        build_composition_networks(cfg, 6, 5, 7, 3, optional=("nope",))


def test_codes_are_flattened_unit_by_unit_mean_then_logvar():
    # two samples, three units, codes of width 2; the value encodes (sample, unit, part)
    mean = torch.tensor([[s * 100 + u * 10 + 0.0] * 2 for s in range(2) for u in range(3)])
    logvar = mean + 1
    flat = flatten_codes(mean, logvar, 3)
    assert flat.shape == (2, 12)
    assert flat[1].tolist() == [100, 100, 101, 101, 110, 110, 111, 111, 120, 120, 121, 121]
    assert join_codes(mean, logvar, 3).shape == (2, 3, 4)


def test_dance_decoder_returns_each_samples_codes_as_consecutive_rows():
    torch.manual_seed(0)
    dec = DanceDecoder(dance_dim=4, hidden=8, movement_dim=3)
    z = torch.randn(2, 4)
    mean, logvar = dec(z, 3)
    assert mean.shape == logvar.shape == (6, 3)
    alone, _ = dec(z[1:], 3)
    torch.testing.assert_close(mean[3:], alone)  # rows 3..5 are sample 1's three units
    fast, _ = DanceDecoder.forward(dec, z, 3)
    dec.fast_recurrence = False
    slow, _ = dec(z, 3)
    torch.testing.assert_close(fast, slow)


def test_discriminator_joins_movement_part_then_audio_part():
    torch.manual_seed(0)
    dis = CodeDiscriminator(code_dim=6, audio_dim=4, hidden=[5, 3], audio_hidden=2)
    code, audio = torch.randn(2, 6), torch.randn(2, 4)
    expected = dis.jointd(torch.cat([dis.movementd(code), dis.audd(audio)], dim=1))
    torch.testing.assert_close(dis(code, audio), expected)
    assert dis.jointd[0].in_features == 3 + 2


def test_module_state_dict_uses_the_original_stage2_names():
    from lightning_modules.composition_module import CompositionModule
    from lightning_modules.config import DecompositionConfig, StyleExtractorConfig

    with torch.device("meta"):
        module = CompositionModule(CompositionConfig(), DecompositionConfig(), StyleExtractorConfig(),
                                   class_names=["zumba", "ballet", "hiphop"])
    assert all(k.startswith("model.") for k in module.state_dict())  # the system's one model
    state = {k: tuple(v.shape) for k, v in module.model.state_dict().items()}
    for name, expected in PAPER.items():
        assert {k[len(name) + 1:]: v for k, v in state.items() if k.startswith(f"{name}.")} == expected, name
    assert {k.split(".")[0] for k in state} == {*PAPER, "movement_enc", "stdp_dec", "initp_enc", "initp_dec",
                                               "style_extractor"}
