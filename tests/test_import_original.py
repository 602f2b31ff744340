"""`d2m import-original`: the original release's checkpoints load into d2m-lab and compute the same thing.

The stand-in checkpoints come from DESIGN.md section 9's names and shapes (tests/original_ckpt_fixture.py).
Every network that comes out of the import is checked against a reference written here directly from
the documented layer list with torch functional ops (never by calling d2m-lab's modules): if a key
were copied into the wrong layer, a gate order or a concatenation order differed, or a sample-major
reshape were transposed, the outputs would differ.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shlex
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import original_ckpt_fixture as fx
import pytest
import torch
import torch.nn.functional as F
from music_files import write_click_track

from common.errors import D2MError
from experiments.import_original import import_original

B = 2  # batch
T = 32  # frames per dance unit
L = 3  # units per sequence
W = 30  # audio frames of a style window (2 s)
CLOSE = {"rtol": 1e-4, "atol": 1e-5}


# --- the reference: DESIGN.md section 9's layer list, in functional form ----------------------------------


def lin(x, sd, name):
    return F.linear(x, sd[f"{name}.weight"], sd[f"{name}.bias"])


def norm(x, sd, name):
    return F.layer_norm(x, (x.shape[-1],), sd[f"{name}.weight"], sd[f"{name}.bias"], eps=1e-5)


def lrelu(x):
    return F.leaky_relu(x, 0.2)


def gru_cell(x, h, sd, suffix=""):
    """PyTorch's GRU cell, gates in the order r, z, n."""
    gi = F.linear(x, sd[f"recurrent.weight_ih_l0{suffix}"], sd[f"recurrent.bias_ih_l0{suffix}"])
    gh = F.linear(h, sd[f"recurrent.weight_hh_l0{suffix}"], sd[f"recurrent.bias_hh_l0{suffix}"])
    i_r, i_z, i_n = gi.chunk(3, dim=1)
    h_r, h_z, h_n = gh.chunk(3, dim=1)
    r = torch.sigmoid(i_r + h_r)
    z = torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    return (1 - z) * n + z * h


def gru(xs, h0, sd, suffix="", reverse=False):
    """Outputs (N, steps, H) of one GRU direction over xs (N, steps, I); a reverse pass reads from the end."""
    steps = range(xs.shape[1] - 1, -1, -1) if reverse else range(xs.shape[1])
    h, outs = h0, {}
    for t in steps:
        h = gru_cell(xs[:, t], h, sd, suffix)
        outs[t] = h
    return torch.stack([outs[t] for t in range(xs.shape[1])], dim=1)


def learned_start(sd, n, direction=0):
    """The learned `init_h` (directions, 1, H) repeated over the batch."""
    return sd["init_h"][direction, 0].unsqueeze(0).repeat(n, 1)


def ref_initp_enc(sd, pose):
    h = lrelu(norm(lin(pose, sd, "enc.0"), sd, "enc.1"))
    h = lrelu(norm(lin(h, sd, "enc.3"), sd, "enc.4"))
    return lin(h, sd, "mean.0"), lin(h, sd, "std.0")


def ref_initp_dec(sd, z):
    h = lrelu(norm(lin(z, sd, "dec.0"), sd, "dec.1"))
    h = lrelu(norm(lin(h, sd, "dec.3"), sd, "dec.4"))
    return lin(h, sd, "dec.6")


def ref_movement_enc(sd, poses):
    n = poses.shape[0]
    forward = gru(poses, learned_start(sd, n, 0), sd)
    backward = gru(poses, learned_start(sd, n, 1), sd, suffix="_reverse", reverse=True)
    h = torch.cat([forward[:, -1], backward[:, 0]], dim=1)  # forward's last step, backward's first
    return lin(h, sd, "mean.0"), lin(h, sd, "std.0")


def ref_stdp_dec(sd, z_init, z_movement, length):
    h0 = lin(torch.cat([z_init, z_movement], dim=1), sd, "z2init.0")
    outs = gru(z_movement.unsqueeze(1).repeat(1, length, 1), h0, sd)
    h = F.relu(norm(lin(outs, sd, "pose_g.0"), sd, "pose_g.1"))
    return lin(h, sd, "pose_g.3")


def ref_dance_enc(sd, mean_rows, logvar_rows, units):
    """Movement codes as sample-major rows (N * units, M); each unit is read as [mean, log-variance]."""
    n = mean_rows.shape[0] // units
    steps = torch.stack([torch.stack([torch.cat([mean_rows[i * units + u], logvar_rows[i * units + u]])
                                      for u in range(units)]) for i in range(n)])
    last = gru(steps, learned_start(sd, n), sd)[:, -1]
    return lin(last, sd, "mean.0"), lin(last, sd, "std.0")


def ref_dance_dec(sd, z, units):
    n = z.shape[0]
    outs = gru(z.unsqueeze(1).repeat(1, units, 1), lin(z, sd, "z2init.0"), sd)
    rows = torch.stack([outs[i, u] for i in range(n) for u in range(units)])  # sample-major
    h = F.relu(norm(lin(rows, sd, "movement_g.0"), sd, "movement_g.1"))
    return lin(h, sd, "mean.0"), lin(h, sd, "std.0")


def ref_audstyle_enc(sd, style, noise):
    h = lrelu(norm(lin(torch.cat([style, noise], dim=1), sd, "enc.0"), sd, "enc.1"))
    h = lrelu(norm(lin(h, sd, "enc.3"), sd, "enc.4"))
    return lin(h, sd, "mean.0"), lin(h, sd, "std.0")


def ref_dance_reg(sd, z):
    h = z
    for a, b in (("main.0", "main.1"), ("main.3", "main.4"), ("main.6", "main.7")):
        h = lrelu(norm(lin(h, sd, a), sd, b))
    return lin(h, sd, "main.9")


def ref_discriminator(sd, code, audio):
    m = code
    for a, b in (("movementd.0", "movementd.1"), ("movementd.3", "movementd.4"), ("movementd.6", "movementd.7")):
        m = lrelu(norm(lin(m, sd, a), sd, b))
    m = lin(m, sd, "movementd.9")
    a = lrelu(norm(lin(audio, sd, "audd.0"), sd, "audd.1"))
    a = lrelu(norm(lin(a, sd, "audd.3"), sd, "audd.4"))
    return lin(torch.cat([m, a], dim=1), sd, "jointd.0")  # [movement part, audio part]


def ref_unit_codes(mean_rows, logvar_rows, units):
    """The movement discriminator's input: per sample, unit by unit, each unit's mean then log-variance."""
    n = mean_rows.shape[0] // units
    return torch.stack([torch.cat([torch.cat([mean_rows[i * units + u], logvar_rows[i * units + u]])
                                   for u in range(units)]) for i in range(n)])


def ref_style(sd, features):
    """(style feature, logits): the GRU's last hidden state, then Linear-ReLU-Linear."""
    last = gru(features, learned_start(sd, features.shape[0]), sd)[:, -1]
    return last, lin(F.relu(lin(last, sd, "classifier.0")), sd, "classifier.2")


# --- fixtures -------------------------------------------------------------------------------------------------


def _fake_dataset(root: Path, gen: torch.Generator) -> dict[str, np.ndarray]:
    """A canonical dataset's stats.npz (and dataset.json): the normalisation the original would use."""
    root.mkdir(parents=True)
    stats = {
        "pose_mean": (200 + 50 * torch.randn(28, generator=gen)).numpy().astype(np.float32),
        "pose_std": (30 + 20 * torch.rand(28, generator=gen)).numpy().astype(np.float32),
        "feature_mean": torch.randn(28, generator=gen).numpy().astype(np.float32),
        "feature_std": (0.5 + torch.rand(28, generator=gen)).numpy().astype(np.float32),
    }
    np.savez(root / "stats.npz", **stats)
    (root / "dataset.json").write_text(json.dumps({"name": "original", "styles": ["zumba", "ballet", "hiphop"]}))
    return stats


@pytest.fixture(autouse=True)
def _drop_checkpoints(tmp_path):
    """Each full import writes about 200 MB of checkpoints; pytest keeps old temporary folders, so drop them."""
    yield
    for path in tmp_path.rglob("*.ckpt"):
        path.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """One paper-size import of random stand-in checkpoints, with a dataset's statistics."""
    base = tmp_path_factory.mktemp("import_original")
    states = fx.build_states(seed=0)
    paths = fx.write_original(base / "original", states)
    gen = torch.Generator().manual_seed(1)
    data_root = base / "dataset"
    stats = _fake_dataset(data_root, gen)
    run = import_original(decomp=paths["decomp"], comp=paths["comp"], style=paths["style"], out=base / "run",
                          data_root=str(data_root))
    yield SimpleNamespace(states=states, paths=paths, run=run, data_root=data_root, stats=stats, gen=gen)
    for path in (*paths.values(), *(run / "checkpoints").glob("*.ckpt")):  # a few hundred MB
        path.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def modules(imported):
    """The three imported checkpoints, loaded the way evaluation and generation load them."""
    from lightning_modules.composition_module import CompositionModule
    from lightning_modules.decomposition_module import DecompositionModule
    from lightning_modules.style_module import StyleExtractorModule

    ckpt = imported.run / "checkpoints"
    return SimpleNamespace(
        style=StyleExtractorModule.load_from_checkpoint(str(ckpt / "style.ckpt"), map_location="cpu",
                                                        weights_only=True).eval(),
        decomposition=DecompositionModule.load_from_checkpoint(str(ckpt / "decomposition.ckpt"),
                                                               map_location="cpu", weights_only=True).eval(),
        composition=CompositionModule.load_from_checkpoint(str(ckpt / "composition.ckpt"), map_location="cpu",
                                                           weights_only=True).eval(),
    )


@pytest.fixture
def placeholders(tmp_path):
    """Tiny files with the documented names and shapes, for the tests that must be refused."""
    return fx.write_placeholders(tmp_path / "original")


def _import(paths: dict[str, Path], out: Path, **changed: Path):
    files = {**paths, **changed}
    return import_original(decomp=files["decomp"], comp=files["comp"], style=files["style"], out=out)


def _randn(*shape, gen):
    return torch.randn(*shape, generator=gen)


# --- the run directory --------------------------------------------------------------------------------------


def test_run_directory_layout(imported):
    from experiments.rundir import is_done, load_run

    run = load_run(imported.run)
    assert is_done(imported.run)
    assert run.config.preset == "paper"
    assert run.config.decomposition.hidden == 1024 and run.config.composition.dance_dim == 512
    assert run.config.style.arch == "original" and run.config.style.hidden == 30
    assert run.config.data.root == str(imported.data_root.resolve())
    assert run.stages["data"] == {"root": str(imported.data_root.resolve())}
    for stage in ("style", "decomposition", "composition"):
        assert run.checkpoint(stage).is_file()
        assert not Path(run.stages[stage]["checkpoint"]).is_absolute()  # the folder can be moved
    assert not list(imported.run.parent.glob(f".{imported.run.name}.*"))  # no temporary sibling left

    note = json.loads((imported.run / "import.json").read_text())
    assert note["class_names"] == ["zumba", "ballet", "hiphop"]
    assert "Sphinx" in note["feature_note"] and "librosa" in note["feature_note"]
    assert note["feature_spec"]["kind"] == "mfcc_energy_delta"
    assert note["normalisation"]["kind"] == "dataset"
    for role, stage in (("decomp", "decomposition"), ("comp", "composition"), ("style", "style")):
        source = note["sources"][stage]
        assert source["sha256"] == hashlib.sha256(imported.paths[role].read_bytes()).hexdigest()
        assert source["file"] == str(imported.paths[role].resolve())
    assert note["sources"]["decomposition"]["ep"] == 120 and note["sources"]["decomposition"]["total_it"] == 95000


def test_checkpoints_are_plain_lightning_checkpoints(imported):
    """Readable with weights_only=True: nothing but tensors and plain values, like the files they came from."""
    for name in ("style", "decomposition", "composition"):
        ckpt = torch.load(imported.run / "checkpoints" / f"{name}.ckpt", map_location="cpu", weights_only=True)
        assert {"state_dict", "hyper_parameters", "pytorch-lightning_version"} <= set(ckpt)
        assert ckpt["hyper_parameters"]["config"]


def test_hyper_parameters_carry_class_order_features_and_stats(imported, modules):
    comp = modules.composition
    assert comp.hparams.class_names == ["zumba", "ballet", "hiphop"]
    assert modules.style.hparams.class_names == ["zumba", "ballet", "hiphop"]
    assert comp.hparams.feature_spec["kind"] == "mfcc_energy_delta"
    assert comp.hparams.feature_spec["sample_rate"] == 22050
    for key in ("pose_mean", "pose_std", "feature_mean", "feature_std"):
        np.testing.assert_allclose(getattr(comp.model, key).numpy(), imported.stats[key], rtol=1e-6)
    np.testing.assert_allclose(modules.decomposition.pose_std.numpy(), imported.stats["pose_std"], rtol=1e-6)


# --- each imported network computes what the documented layers compute -------------------------------------


@torch.no_grad()
def test_style_extractor_matches_reference(imported, modules):
    sd = imported.states["aud_3cls"]
    features = _randn(B, W, 28, gen=imported.gen)
    want_style, want_logits = ref_style(sd, features)
    for extractor in (modules.style.net, modules.composition.model.style_extractor):
        torch.testing.assert_close(extractor.style_feature(features), want_style, **CLOSE)
        torch.testing.assert_close(extractor(features), want_logits, **CLOSE)


def _check_decomposition_networks(owner, states, movement_key, decoder_key, gen):
    pose = _randn(B, 28, gen=gen)
    mean, logvar = ref_initp_enc(states["initp_enc"], pose)
    got = owner.initp_enc(pose)
    torch.testing.assert_close(got[0], mean, **CLOSE)
    torch.testing.assert_close(got[1], logvar, **CLOSE)

    z_init = _randn(B, 10, gen=gen)
    torch.testing.assert_close(owner.initp_dec(z_init), ref_initp_dec(states["initp_dec"], z_init), **CLOSE)

    poses = _randn(B, T, 28, gen=gen)
    mean, logvar = ref_movement_enc(states[movement_key], poses)
    got = owner.movement_enc(poses)
    torch.testing.assert_close(got[0], mean, **CLOSE)
    torch.testing.assert_close(got[1], logvar, **CLOSE)

    z_movement = _randn(B, 512, gen=gen)
    want = ref_stdp_dec(states[decoder_key], z_init, z_movement, T)
    torch.testing.assert_close(owner.stdp_dec(z_init, z_movement, T), want, **CLOSE)


@torch.no_grad()
def test_decomposition_networks_match_reference(imported, modules):
    _check_decomposition_networks(modules.decomposition.model, imported.states, "movement_enc", "stdp_dec",
                                  imported.gen)


@torch.no_grad()
def test_composition_holds_stage1_pose_vae_and_stage2_finetuned_networks(imported, modules):
    """Initial-pose networks from Stage1.ckpt; movement encoder and pose decoder as fine-tuned in Stage2.ckpt."""
    _check_decomposition_networks(modules.composition.model, imported.states, "stage2_movement_enc", "stage2_stdp_dec",
                                  imported.gen)


@torch.no_grad()
def test_dance_encoder_and_decoder_match_reference(imported, modules):
    comp, states, gen = modules.composition.model, imported.states, imported.gen
    from lightning_modules.networks.composition import join_codes

    mean_rows, logvar_rows = _randn(B * L, 512, gen=gen), _randn(B * L, 512, gen=gen)
    want = ref_dance_enc(states["dance_enc"], mean_rows, logvar_rows, L)
    got = comp.dance_enc(join_codes(mean_rows, logvar_rows, L))
    torch.testing.assert_close(got[0], want[0], **CLOSE)
    torch.testing.assert_close(got[1], want[1], **CLOSE)

    z = _randn(B, 512, gen=gen)
    want = ref_dance_dec(states["dance_dec"], z, L)
    got = comp.dance_dec(z, L)
    assert got[0].shape == (B * L, 512)
    torch.testing.assert_close(got[0], want[0], **CLOSE)
    torch.testing.assert_close(got[1], want[1], **CLOSE)


@torch.no_grad()
def test_music_encoder_and_style_regressor_match_reference(imported, modules):
    comp, states, gen = modules.composition.model, imported.states, imported.gen
    style, noise = _randn(B, 30, gen=gen), _randn(B, 30, gen=gen)
    want = ref_audstyle_enc(states["audstyle_enc"], style, noise)
    got = comp.audstyle_enc(style, noise)
    torch.testing.assert_close(got[0], want[0], **CLOSE)
    torch.testing.assert_close(got[1], want[1], **CLOSE)

    z = _randn(B, 512, gen=gen)
    torch.testing.assert_close(comp.dance_reg(z), ref_dance_reg(states["dance_reg"], z), **CLOSE)


@torch.no_grad()
def test_discriminators_match_reference(imported, modules):
    comp, states, gen = modules.composition.model, imported.states, imported.gen
    from lightning_modules.networks.composition import flatten_codes

    audio = _randn(B, 28, gen=gen)
    mean_rows, logvar_rows = _randn(B * L, 512, gen=gen), _randn(B * L, 512, gen=gen)
    want = ref_discriminator(states["danceAud_dis"], ref_unit_codes(mean_rows, logvar_rows, L), audio)
    torch.testing.assert_close(comp.danceAud_dis(flatten_codes(mean_rows, logvar_rows, L), audio), want, **CLOSE)

    z_mean, z_logvar = _randn(B, 512, gen=gen), _randn(B, 512, gen=gen)
    want = ref_discriminator(states["zdance_dis"], torch.cat([z_mean, z_logvar], dim=1), audio)
    torch.testing.assert_close(comp.zdance_dis(torch.cat([z_mean, z_logvar], dim=1), audio), want, **CLOSE)


@torch.no_grad()
def test_composition_forward_pass_matches_reference(imported, modules):
    """The module's own forward pass (codes at their means) chains the networks as the original does."""
    comp, states, gen = modules.composition, imported.states, imported.gen
    poses, features = _randn(B, L, T, 28, gen=gen), _randn(B, L * T, 28, gen=gen)
    out = comp({"poses": poses, "features": features}, sample=False)
    assert comp.cfg.style_frames == 30

    units = poses.reshape(B * L, T, 28)
    m_mean, m_logvar = ref_movement_enc(states["stage2_movement_enc"], units)
    d_mean, d_logvar = ref_dance_enc(states["dance_enc"], m_mean, m_logvar, L)
    dm_mean, dm_logvar = ref_dance_dec(states["dance_dec"], d_mean, L)
    z_init, _ = ref_initp_enc(states["initp_enc"], units[:, 0])
    want = {
        "movement_mean": m_mean, "movement_logvar": m_logvar, "dance_mean": d_mean, "dance_logvar": d_logvar,
        "dance_movement_mean": dm_mean, "dance_movement_logvar": dm_logvar,
        # the style feature reads the first 2 s (30 frames) of the music in training, as at generation
        "style": ref_style(states["aud_3cls"], features[:, :30])[0], "audio": features.mean(dim=1),
        "pose_reconstruction": ref_stdp_dec(states["stage2_stdp_dec"], z_init, dm_mean, T),
    }
    for key, value in want.items():
        torch.testing.assert_close(out[key], value, **CLOSE, msg=lambda m, key=key: f"{key}: {m}")


def test_without_dataset_the_normalisation_is_the_identity_and_says_so(placeholders, tmp_path):
    from experiments.rundir import load_run
    from lightning_modules.composition_module import CompositionModule

    out = _import(placeholders, tmp_path / "run")
    run = load_run(out)
    assert "data" not in run.stages
    note = json.loads((out / "import.json").read_text())
    assert note["normalisation"]["kind"] == "identity" and "mean 0, std 1" in note["normalisation"]["note"]
    comp = CompositionModule.load_from_checkpoint(str(run.checkpoint("composition")), map_location="cpu",
                                                  weights_only=True)
    assert torch.equal(comp.model.pose_mean, torch.zeros(28)) and torch.equal(comp.model.feature_std, torch.ones(28))


# --- the commands that consume a run directory accept an imported one --------------------------------------


def test_imported_run_generates(imported, tmp_path):
    from experiments.generate import generate_from_run

    music = write_click_track(tmp_path / "music.wav")
    written = generate_from_run(imported.run, music, tmp_path / "dance.npy", samples=2, seed=0, progress=False)
    keypoints = np.load(written[0])
    assert keypoints.shape[0] == 2 and keypoints.shape[2:] == (14, 2) and np.isfinite(keypoints).all()


@pytest.mark.slow
def test_imported_run_evaluates(tiny_dataset, tmp_path, monkeypatch):
    from experiments.evaluate_run import evaluate_run_dir

    paths = fx.write_original(tmp_path / "original", fx.build_states(seed=3))
    run = import_original(decomp=paths["decomp"], comp=paths["comp"], style=paths["style"], out=tmp_path / "run",
                          data_root=str(tiny_dataset))
    monkeypatch.chdir(tmp_path)  # the evaluation cache goes under the config's relative runs_dir
    metrics = json.loads(evaluate_run_dir(run).read_text())
    assert "evaluation/fid_kinetic" in metrics and "reference/fid_kinetic" in metrics


# --- refusals ----------------------------------------------------------------------------------------------


def _resave(path: Path, edit) -> Path:
    obj = torch.load(path, map_location="cpu", weights_only=True)
    edit(obj)
    torch.save(obj, path)
    return path


def test_state_dicts_saved_from_data_parallel_import(placeholders, tmp_path):
    """A uniform `module.` prefix (nn.DataParallel) is only a renaming, so it is accepted."""

    def edit(obj):
        for name in fx.STAGE1:
            obj[name] = {f"module.{k}": v for k, v in obj[name].items()}

    _resave(placeholders["decomp"], edit)
    assert (_import(placeholders, tmp_path / "run") / "checkpoints" / "decomposition.ckpt").is_file()


def test_wrong_shape_is_refused_with_key_and_both_shapes(placeholders, tmp_path):
    def edit(obj):
        obj["dance_enc"]["recurrent.weight_hh_l0"] = torch.zeros(3072, 512)

    _resave(placeholders["comp"], edit)
    with pytest.raises(D2MError) as err:
        _import(placeholders, tmp_path / "run")
    msg = str(err.value)
    assert "Stage2.ckpt" in msg and "dance_enc.recurrent.weight_hh_l0" in msg
    assert "(3072, 512)" in msg and "(3072, 1024)" in msg
    assert not (tmp_path / "run").exists()


def test_missing_key_is_refused_with_module_and_key(placeholders, tmp_path):
    _resave(placeholders["comp"], lambda obj: obj["dance_enc"].pop("recurrent.weight_hh_l0"))
    with pytest.raises(D2MError, match=r"Stage2\.ckpt: missing dance_enc\.recurrent\.weight_hh_l0"):
        _import(placeholders, tmp_path / "run")


def test_a_state_dict_cut_short_is_refused_naming_the_first_missing_key(placeholders, tmp_path):
    def edit(obj):
        keys = list(obj["movement_enc"])
        obj["movement_enc"] = {k: obj["movement_enc"][k] for k in keys[: len(keys) // 2]}

    _resave(placeholders["decomp"], edit)
    with pytest.raises(D2MError, match=r"Stage1\.ckpt: missing movement_enc\.recurrent\.\w+ \(and \d+ more\)"):
        _import(placeholders, tmp_path / "run")


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("role", ["decomp", "comp", "style"])
def test_truncated_file_is_refused(placeholders, tmp_path, role, legacy):
    path = placeholders[role]
    obj = torch.load(path, map_location="cpu", weights_only=True)
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(D2MError) as err:
        _import(placeholders, tmp_path / "run")
    assert str(err.value).startswith(f"{path}: ") and "truncated" in str(err.value)


def test_unexpected_key_is_refused(placeholders, tmp_path):
    def edit(obj):
        obj["zdance_dis"]["movementd.10.weight"] = torch.zeros(30)

    _resave(placeholders["comp"], edit)
    with pytest.raises(D2MError, match=r"Stage2\.ckpt: unexpected zdance_dis\.movementd\.10\.weight"):
        _import(placeholders, tmp_path / "run")


@pytest.mark.parametrize("role, content, expect", [
    ("decomp", [1, 2, 3], r"Stage1\.ckpt: not a Stage1 .* it holds a list"),
    ("comp", {"dance_enc": torch.zeros(3)}, r"Stage2\.ckpt: not a Stage2 .* bare state dict"),
    ("style", {"initp_enc": {"enc.0.weight": torch.zeros(64, 28)}}, r"aud_3cls\.ckpt: not the original style"),
    ("comp", {"dance_enc": {}, "ep": 3}, r"Stage2\.ckpt: missing dance_enc\.init_h"),
    ("comp", {"ep": 3}, r"Stage2\.ckpt: missing dance_enc \(a Stage2"),
])
def test_files_that_are_not_such_checkpoints_are_refused(placeholders, tmp_path, role, content, expect):
    torch.save(content, placeholders[role])
    with pytest.raises(D2MError, match=expect):
        _import(placeholders, tmp_path / "run")


def test_swapped_files_are_refused(placeholders, tmp_path):
    with pytest.raises(D2MError, match=r"Stage1\.ckpt: missing dance_enc"):
        _import(placeholders, tmp_path / "run", comp=placeholders["decomp"])


def test_non_float_and_non_finite_weights_are_refused(placeholders, tmp_path):
    _resave(placeholders["style"], lambda obj: obj.__setitem__("init_h", torch.full((1, 1, 30), float("nan"))))
    with pytest.raises(D2MError, match=r"aud_3cls\.ckpt: init_h holds NaN"):
        _import(placeholders, tmp_path / "run")
    _resave(placeholders["style"], lambda obj: obj.__setitem__("init_h", torch.zeros(1, 1, 30, dtype=torch.long)))
    with pytest.raises(D2MError, match=r"aud_3cls\.ckpt: init_h holds torch\.int64"):
        _import(placeholders, tmp_path / "run")


class _Payload:
    """Unpickling this calls os.system: what a malicious checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("writer", ["torch.save", "pickle protocol 2", "pickle protocol 4"])
@pytest.mark.parametrize("role", ["decomp", "comp", "style"])
def test_a_pickle_carrying_code_is_refused_without_running_it(placeholders, tmp_path, role, writer):
    marker = tmp_path / "payload-ran"
    content = {"initp_enc": _Payload(marker), "ep": 1}
    if writer == "torch.save":
        torch.save(content, placeholders[role])
    else:
        with open(placeholders[role], "wb") as f:
            pickle.dump(content, f, protocol=int(writer[-1]))
    with pytest.raises(D2MError, match="refused") as err:
        _import(placeholders, tmp_path / "run")
    assert str(err.value).startswith(f"{placeholders[role]}: refused")
    if writer != "pickle protocol 4":  # protocol 4 is refused at its first frame, before the call is reached
        assert "system" in str(err.value)
    assert not marker.exists()
    assert not (tmp_path / "run").exists()


def test_the_payload_is_live(tmp_path):
    """The refusal above means something: the same bytes, unpickled without restriction, run the command."""
    marker = tmp_path / "payload-ran"
    pickle.loads(pickle.dumps({"x": _Payload(marker)}))
    assert marker.exists()


def test_an_existing_directory_that_is_not_an_import_is_left_alone(placeholders, tmp_path):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "results.csv").write_text("keep me\n")
    with pytest.raises(D2MError, match="not an imported run directory"):
        _import(placeholders, out)
    assert (out / "results.csv").read_text() == "keep me\n"


def test_bad_dataset_statistics_are_refused(placeholders, tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    np.savez(root / "stats.npz", pose_mean=np.zeros(28), pose_std=np.ones(28), feature_mean=np.zeros(40),
             feature_std=np.ones(40))
    with pytest.raises(D2MError, match=r"stats\.npz: feature_mean has 40 numbers but the original model needs 28"):
        import_original(decomp=placeholders["decomp"], comp=placeholders["comp"], style=placeholders["style"],
                        out=tmp_path / "run", data_root=str(root))
    with pytest.raises(D2MError, match="no such dataset directory"):
        import_original(decomp=placeholders["decomp"], comp=placeholders["comp"], style=placeholders["style"],
                        out=tmp_path / "run", data_root=str(tmp_path / "nowhere"))


def test_command_line(placeholders, tmp_path, capsys):
    from d2m.cli import main

    args = ["import-original", "--decomp", str(placeholders["decomp"]), "--comp", str(placeholders["comp"]),
            "--style", str(placeholders["style"]), "--out", str(tmp_path / "run")]
    assert main(args) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(tmp_path / "run")

    _resave(placeholders["comp"], lambda obj: obj["dance_dec"].pop("mean.0.bias"))
    assert main([*args[:-1], str(tmp_path / "run2")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("d2m: error: ") and "dance_dec.mean.0.bias" in err
