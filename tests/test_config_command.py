"""`d2m config` prints the resolved config or one stage's hashed section; `d2m table` names bad paths."""

import yaml
from omegaconf import OmegaConf

from d2m.cli import main
from experiments.config import config_hash, load_config
from experiments.stage_graph import stage_key


def test_config_prints_the_resolved_config(capsys):
    assert main(["config", "tiny", "seed=4", "style.hidden=12"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    expected = OmegaConf.to_container(load_config("tiny", ["seed=4", "style.hidden=12"]), resolve=True)
    assert printed == expected and printed["seed"] == 4 and printed["style"]["hidden"] == 12


def test_config_stage_prints_its_key_then_what_the_key_hashes(capsys):
    overrides = ["composition.losses.kl.enabled=false", "logging.wandb=true"]
    assert main(["config", "tiny", *overrides, "--stage", "composition"]) == 0
    first, rest = capsys.readouterr().out.split("\n", 1)
    key = stage_key(load_config("tiny", overrides), "composition")
    assert first == f"key: {key}"
    section = yaml.safe_load(rest)
    assert config_hash(section) == key
    assert "kl" not in section["composition"]["losses"]  # a term switched off is in no key
    assert section["composition"]["losses"]["style_alignment"]["enabled"] is True
    assert "logging" not in section and "evaluation" not in section
    assert set(section["upstream"]) == {"data", "style", "decomposition"}


def test_bad_paths_are_one_line_errors(tmp_path, capsys):
    assert main(["config", "tiny", "style.hiden=3"]) == 2
    assert "style.hiden" in capsys.readouterr().err
    assert main(["table", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("d2m: error:") and "neither a results folder" in err and len(err.splitlines()) == 1
    assert main(["table", str(tmp_path / "no-such.yaml")]) == 2
    assert "matrix file not found" in capsys.readouterr().err


def test_config_stage_choices_are_the_stage_graph():
    from d2m.cli import build_parser
    from experiments.stage_graph import STAGES

    config = build_parser()._subparsers._group_actions[0].choices["config"]
    stage = next(a for a in config._actions if a.dest == "stage")
    assert tuple(stage.choices) == STAGES
