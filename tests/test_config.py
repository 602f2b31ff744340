"""The config system: presets, precedence, and errors that name the key before any work starts."""

import pytest

from common.errors import D2MError
from experiments.config import config_hash, load_config
from experiments.rundir import run_name, stage_key


def test_builtin_configs_load_with_their_presets():
    tiny, demo, paper = load_config("tiny"), load_config("demo"), load_config("paper")
    assert (tiny.preset, demo.preset, paper.preset) == ("tiny", "small", "paper")
    assert paper.decomposition.hidden == 1024 and paper.composition.dance_dim == 512
    assert demo.decomposition.hidden < paper.decomposition.hidden
    assert tiny.decomposition.hidden < demo.decomposition.hidden
    assert tiny.name == "tiny"


def test_precedence_cli_over_yaml_over_preset(tmp_path):
    f = tmp_path / "exp.yaml"
    f.write_text("preset: tiny\ndecomposition:\n  hidden: 20\n")
    assert load_config(f).decomposition.hidden == 20
    assert load_config(f, ["decomposition.hidden=24"]).decomposition.hidden == 24
    assert load_config(f).decomposition.movement_dim == 8  # from the tiny preset
    assert load_config(f).name == "exp"


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["decompositon.hidden=3"], "'decompositon'"),
        (["decomposition.hiden=3"], "'decomposition.hiden'"),
        (["decomposition.hidden=abc"], "'decomposition.hidden'"),
        (["style.arch=big"], "choices: original, improved"),
        (["composition.losses.style_alignmnt.enabled=false"], "style_alignmnt"),
        (["preset=huge"], "choices: paper, small, tiny"),
        (["seed"], "key=value"),
    ],
)
def test_bad_overrides_name_the_key(overrides, needle):
    with pytest.raises(D2MError, match=None) as err:
        load_config("tiny", overrides)
    assert needle in str(err.value)


def test_typo_in_yaml_names_key_and_allowed_choices(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("trainer:\n  acelerator: cpu\n")
    with pytest.raises(D2MError) as err:
        load_config(f)
    msg = str(err.value)
    assert "trainer.acelerator" in msg and "accelerator" in msg and str(f) in msg


def test_missing_file_lists_builtin_configs():
    with pytest.raises(D2MError, match="demo, paper, tiny"):
        load_config("no/such/file.yaml")


def test_stage_keys_shared_where_upstream_is_the_same():
    full = load_config("tiny")
    ablated = load_config("tiny", ["composition.losses.style_alignment.enabled=false"])
    assert stage_key(full, "style") == stage_key(ablated, "style")
    assert stage_key(full, "decomposition") == stage_key(ablated, "decomposition")
    assert stage_key(full, "composition") != stage_key(ablated, "composition")
    other_style = load_config("tiny", ["style.hidden=12"])
    assert stage_key(full, "style") != stage_key(other_style, "style")
    assert stage_key(full, "decomposition") == stage_key(other_style, "decomposition")
    assert stage_key(full, "composition") != stage_key(other_style, "composition")  # upstream changed
    assert stage_key(full, "style") != stage_key(load_config("tiny", ["seed=1"]), "style")


def test_run_names_are_deterministic_and_ignore_logging():
    a, b = load_config("tiny"), load_config("tiny", ["logging.wandb=true"])
    assert run_name(a) == run_name(b) == run_name(load_config("tiny"))
    assert run_name(a) != run_name(load_config("tiny", ["seed=3"]))
    assert run_name(a).startswith("tiny-s0-")


def test_config_hash_ignores_key_order():
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_a_scale_jitter_outside_its_range_is_refused_before_any_work():
    with pytest.raises(D2MError, match="data.scale_jitter"):
        load_config("tiny", ["data.scale_jitter=1.5"])
    assert load_config("tiny", ["data.scale_jitter=0.2"]).data.scale_jitter == 0.2
    for key, bad in (("bone_jitter", 1.0), ("mirror", 1.1), ("mirror", -0.5)):
        with pytest.raises(D2MError, match=f"data.{key}"):
            load_config("tiny", [f"data.{key}={bad}"])
    assert load_config("tiny", ["data.mirror=1"]).data.mirror == 1.0
