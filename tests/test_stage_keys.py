"""Stage keys hash exactly what each stage reads: flip every config leaf, see which keys change."""

import copy

import pytest
import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf

from common.errors import D2MError
from datamodules.lightning_data import UnitDataModule
from experiments import stage_graph
from experiments.config import config_hash, load_config
from experiments.stage_graph import STAGES, stage_key, stage_section, stage_yaml, stages_until

TRAINED = "style decomposition composition evaluation"
UNITS = "decomposition composition evaluation"
EVERY = "data " + TRAINED

# Config prefix -> the stages whose key must change when a leaf under it changes (longest prefix wins).
# A new config leaf fails the test until it gets a row here: decide which stages read it.
EXPECTED = {
    "name": "", "group": "", "preset": "", "runs_dir": "", "logging": "",
    "seed": TRAINED,
    "data.root": EVERY, "data.source": EVERY, "data.synth": EVERY, "data.features": EVERY,
    "data.num_workers": TRAINED,
    "data.window_stride": "style composition evaluation",
    "data.styles": UNITS, "data.unit_mode": UNITS, "data.unit_frames": UNITS, "data.unit_stride": UNITS,
    "data.beat_min_gap": UNITS, "data.beat_max_gap": UNITS, "data.jitter_x": UNITS, "data.jitter_y": UNITS,
    "data.scale_jitter": UNITS, "data.bone_jitter": UNITS, "data.mirror": UNITS,
    "data.sequence_mirror": "composition evaluation",
    "data.sequence_units": "composition evaluation",
    "style": "style composition evaluation",
    "decomposition": UNITS,
    "composition": "composition evaluation",
    "evaluation": "evaluation",
    "trainer.accelerator": TRAINED, "trainer.devices": TRAINED, "trainer.num_nodes": TRAINED,
    "trainer.strategy": TRAINED, "trainer.precision": TRAINED, "trainer.deterministic": TRAINED,
    "trainer.overfit_batches": TRAINED,
    "trainer.log_every_n_steps": "", "trainer.progress_bar": "", "trainer.threads": "",
}
BASE = load_config("tiny")


def leaves(node, prefix=""):
    for key, value in node.items():
        path = f"{prefix}{key}"
        if isinstance(value, DictConfig):
            yield from leaves(value, path + ".")
        else:
            yield path


LEAVES = list(leaves(BASE))


def flipped(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value + 0.5
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, ListConfig):
        items = list(value)
        return items + [items[-1]] if items else ["ballet"]
    raise TypeError(f"no flip for {type(value).__name__}")


def switched_off_term(leaf):
    """True for a leaf of a loss term that BASE has switched off, other than its `enabled` switch."""
    parts = leaf.split(".")
    if len(parts) != 4 or parts[1] != "losses" or parts[3] == "enabled":
        return False
    return not OmegaConf.select(BASE, ".".join([*parts[:3], "enabled"]))


def expected_for(leaf):
    matches = [p for p in EXPECTED if leaf == p or leaf.startswith(p + ".")]
    assert matches, f"config leaf '{leaf}' has no row in EXPECTED"
    if switched_off_term(leaf):
        return set()  # a term that is off is never built: nothing it holds is in a key
    return set(EXPECTED[max(matches, key=len)].split())


@pytest.mark.parametrize("leaf", LEAVES)
def test_flipping_a_leaf_changes_exactly_the_stages_that_read_it(leaf):
    cfg = copy.deepcopy(BASE)
    OmegaConf.update(cfg, leaf, flipped(OmegaConf.select(BASE, leaf)), merge=False)
    assert OmegaConf.select(cfg, leaf) != OmegaConf.select(BASE, leaf)
    changed = {s for s in STAGES if stage_key(cfg, s) != stage_key(BASE, s)}
    assert changed == expected_for(leaf)


def test_a_term_switched_off_is_in_no_key_and_switching_it_on_is():
    off = [leaf for leaf in LEAVES if switched_off_term(leaf)]
    assert "decomposition.losses.velocity_reconstruction.weight" in off  # tiny leaves it off
    assert "composition.losses.dance_code_mmd.weight" in off
    cfg = copy.deepcopy(BASE)
    del cfg.composition.losses["movement_code_mmd"]  # the schema as it was before the term existed
    assert all(stage_key(cfg, s) == stage_key(BASE, s) for s in STAGES)
    assert "movement_code_mmd" not in yaml.safe_load(stage_yaml(BASE, "composition"))["composition"]["losses"]
    on = load_config("tiny", ["composition.losses.movement_code_mmd.enabled=true"])
    assert {s for s in STAGES if stage_key(on, s) != stage_key(BASE, s)} == {"composition", "evaluation"}
    spec = yaml.safe_load(stage_yaml(on, "composition"))["composition"]["losses"]["movement_code_mmd"]
    assert spec["enabled"] is True and spec["weight"] == 10.0


def test_an_augmentation_at_zero_is_in_no_key_and_turning_it_on_is(monkeypatch):
    assert BASE.data.mirror == 0 and BASE.data.bone_jitter == 0  # tiny leaves them off
    keys = {s: stage_key(BASE, s) for s in STAGES}
    # the code as it was before the two existed: the unit data module did not read them
    before = tuple(r for r in UnitDataModule.CONFIG_READS if r not in ("data.mirror", "data.bone_jitter"))
    monkeypatch.setattr(UnitDataModule, "CONFIG_READS", before)
    stage_graph.stage_reads.cache_clear()
    assert {s: stage_key(BASE, s) for s in STAGES} == keys
    monkeypatch.undo()
    stage_graph.stage_reads.cache_clear()
    assert "mirror" not in yaml.safe_load(stage_yaml(BASE, "decomposition"))["data"]
    on = load_config("tiny", ["data.mirror=0.5"])
    assert {s for s in STAGES if stage_key(on, s) != stage_key(BASE, s)} == set(UNITS.split())
    assert yaml.safe_load(stage_yaml(on, "decomposition"))["data"]["mirror"] == 0.5


def test_every_row_of_the_table_names_real_leaves():
    for prefix in EXPECTED:
        assert any(leaf == prefix or leaf.startswith(prefix + ".") for leaf in LEAVES), prefix
    assert "trainer.compile" not in LEAVES  # nothing read it; it is gone from the schema


def test_stage_yaml_is_what_the_key_hashes():
    cfg = load_config("tiny", ["composition.losses.style_alignment.enabled=false"])
    for stage in STAGES:
        spec = yaml.safe_load(stage_yaml(cfg, stage))
        assert spec["stage"] == stage
        assert config_hash(spec) == stage_key(cfg, stage)
    style = yaml.safe_load(stage_yaml(cfg, "style"))
    assert "composition" not in style and set(style["data"]) == {"num_workers", "window_stride"}
    assert set(style["upstream"]) == {"data"}
    assert set(yaml.safe_load(stage_yaml(cfg, "evaluation"))["upstream"]) == {"data", "composition"}


def test_one_graph_orders_the_stages():
    assert stages_until("style") == ["data", "style"]
    assert stages_until("evaluation") == list(STAGES)
    assert stages_until("decomposition") == ["data", "decomposition"]
    from experiments.stages import STAGE_FUNCTIONS

    assert tuple(STAGE_FUNCTIONS) == STAGES
    with pytest.raises(D2MError, match="unknown stage 'nope'"):
        stages_until("nope")


def test_a_bad_declaration_is_named(monkeypatch):
    monkeypatch.setitem(stage_graph.GRAPH, "broken", stage_graph.Stage(("data",), ("data.no_such_key",)))
    monkeypatch.setitem(stage_graph.GRAPH, "undeclared", stage_graph.Stage((), (), ("experiments.config:Path",)))
    stage_graph.stage_reads.cache_clear()
    try:
        with pytest.raises(D2MError, match="'data.no_such_key'"):
            stage_section(BASE, "broken")
        with pytest.raises(D2MError, match="experiments.config:Path must declare CONFIG_READS"):
            stage_key(BASE, "undeclared")
    finally:
        stage_graph.stage_reads.cache_clear()


@pytest.mark.parametrize("module,owner,name,stage,renamed", [
    ("lightning_modules.decomposition_module", "DecompositionModule", "CHECKPOINT_FORMAT", "decomposition",
     {"decomposition", "composition", "evaluation"}),
    ("evaluation.evaluate", None, "METRICS_VERSION", "evaluation", {"evaluation"}),
])
def test_a_new_format_or_metrics_version_renames_its_stage_and_those_downstream(monkeypatch, module, owner, name,
                                                                               stage, renamed):
    import importlib

    target = importlib.import_module(module)
    target = getattr(target, owner) if owner else target
    before = {s: stage_key(BASE, s) for s in STAGES}
    monkeypatch.setattr(target, name, getattr(target, name) + 1)
    stage_graph.stage_formats.cache_clear()
    try:
        after = {s: stage_key(BASE, s) for s in STAGES}
        assert {s for s in STAGES if before[s] != after[s]} == renamed
        assert yaml.safe_load(stage_yaml(BASE, stage))["formats"] == {owner or name: getattr(target, name)}
    finally:
        stage_graph.stage_formats.cache_clear()
