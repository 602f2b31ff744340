"""No command deletes or overwrites what it did not create; a failed write leaves nothing partial.

Each data command (`data synth`, `data import-d2m`, `data prepare`) and `run` with the default
synthetic source is given an output folder that holds someone's files, an input, or a file: each
must refuse with one line and exit 2, leaving every byte where it was.
"""

import contextlib
import errno
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from common.atomic import atomic_dir, sweep_stale
from common.errors import D2MError
from d2m.cli import main
from datamodules.config import FeatureConfig, SynthConfig
from datamodules.dataset import CanonicalDataset, Clip, dataset_writer
from datamodules.factory import ensure_dataset
from datamodules.synth import build_synthetic

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from test_data_formats import make_own_data, make_release  # noqa: E402

TINY_SYNTH = ["--clips-per-style", "3", "--seconds", "4.5"]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def user_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "thesis.txt").write_text("four years of work")
    (path / "sub").mkdir()
    (path / "sub" / "data.bin").write_bytes(b"\x00\x01")
    return path


def one_line_error(capsys, *needles):
    err = capsys.readouterr().err.strip().splitlines()
    last = err[-1]
    assert last.startswith("d2m: error:"), err
    assert [line for line in err if line.startswith("d2m: error:")] == [last]
    for needle in needles:
        assert needle in last, (needle, last)
    return last


def fake_dataset(out: Path, source: str) -> Path:
    """A complete, small d2m-lab dataset made by `source` (no audio, random numbers)."""
    rng = np.random.default_rng(0)
    with dataset_writer(out, name=source, styles=["zumba"], feature_spec=asdict(FeatureConfig()), feature_dim=28,
                        sample_rate=22050, source=source) as writer:
        writer.add_clip(Clip("a", "zumba", "train", poses=rng.uniform(0, 9, (40, 14, 2)).astype(np.float32),
                             features=rng.standard_normal((40, 28)).astype(np.float32), beats=np.arange(3, 40, 8)))
    return out


# ---- data synth ----------------------------------------------------------------------------------

def test_synth_refuses_a_folder_of_user_files(tmp_path, capsys):
    out = user_folder(tmp_path / "mine")
    before = snapshot(out)
    assert main(["data", "synth", "--out", str(out), *TINY_SYNTH]) == 2
    one_line_error(capsys, str(out), "not a d2m-lab dataset")
    assert main(["data", "synth", "--out", str(out), "--force", *TINY_SYNTH]) == 2  # --force never helps here
    assert snapshot(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_synth_replaces_its_own_dataset_only_with_force(tmp_path, capsys):
    out = fake_dataset(tmp_path / "synth", "synth")
    before = snapshot(out)
    assert main(["data", "synth", "--out", str(out), *TINY_SYNTH]) == 2
    one_line_error(capsys, "--force")
    assert snapshot(out) == before
    assert main(["data", "synth", "--out", str(out), "--force", *TINY_SYNTH]) == 0
    ds = CanonicalDataset(out)
    assert ds.meta["counts"]["clips"] == 9 and ds.meta["synth"]["seconds"] == 4.5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synth"]  # no temporary or old folder left
    other = fake_dataset(tmp_path / "prepared", "prepare")  # a dataset of another kind is never replaced
    assert main(["data", "synth", "--out", str(other), "--force", *TINY_SYNTH]) == 2
    one_line_error(capsys, "'prepare'")
    assert CanonicalDataset(other).meta["source"] == "prepare"


def test_out_that_is_a_file(tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    assert main(["data", "synth", "--out", str(target), *TINY_SYNTH]) == 2
    one_line_error(capsys, str(target), "is a file")
    assert target.read_text() == "keep me"


def test_an_empty_out_folder_is_used(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    build_synthetic(out, SynthConfig(clips_per_style=3, seconds=4.5))
    assert CanonicalDataset(out).meta["source"] == "synth"


# ---- data import-d2m -----------------------------------------------------------------------------

def test_import_d2m_refuses_user_files_and_its_own_input(tmp_path, capsys):
    src, _ = make_release(tmp_path / "release", videos_per_style=1)
    before = snapshot(src)
    mine = user_folder(tmp_path / "mine")
    assert main(["data", "import-d2m", str(src), "--out", str(mine)]) == 2
    one_line_error(capsys, str(mine), "not a d2m-lab dataset")
    for out in (src, src / "data", src / "data" / "converted"):
        assert main(["data", "import-d2m", str(src), "--out", str(out), "--force"]) == 2
        one_line_error(capsys, "inside the input")
    assert snapshot(src) == before
    assert snapshot(mine) == {"thesis.txt": b"four years of work", "sub/data.bin": b"\x00\x01"}
    out = tmp_path / "d2m"
    assert main(["data", "import-d2m", str(src), "--out", str(out)]) == 0
    assert main(["data", "import-d2m", str(src), "--out", str(out)]) == 2
    one_line_error(capsys, "--force")
    assert main(["data", "import-d2m", str(src), "--out", str(out), "--force"]) == 0
    assert CanonicalDataset(out).meta["source"] == "import-d2m"


# ---- data prepare --------------------------------------------------------------------------------

def test_prepare_refuses_user_files_and_its_inputs(tmp_path, capsys):
    kp, audio, _ = make_own_data(tmp_path, "npy")
    inputs = {"kp": snapshot(kp), "audio": snapshot(audio)}
    mine = user_folder(tmp_path / "mine")
    base = ["data", "prepare", "--keypoints", str(kp), "--audio", str(audio)]
    assert main([*base, "--out", str(mine)]) == 2
    one_line_error(capsys, str(mine), "not a d2m-lab dataset")
    for out in (kp, audio, kp / "ds"):  # --out = --keypoints deleted the keypoints before
        assert main([*base, "--out", str(out), "--force"]) == 2
        one_line_error(capsys, "inside the input")
    assert main([*base, "--out", str(tmp_path), "--force"]) == 2  # a folder that holds the inputs
    one_line_error(capsys, "holds the input")
    assert {"kp": snapshot(kp), "audio": snapshot(audio)} == inputs
    assert snapshot(mine) == {"thesis.txt": b"four years of work", "sub/data.bin": b"\x00\x01"}


# ---- run with the default (synthetic) source ------------------------------------------------------

def test_run_default_source_never_writes_into_a_foreign_data_root(tmp_path, capsys):
    raw = tmp_path / "raw_keypoints"
    raw.mkdir()
    np.save(raw / "clip0.npy", np.zeros((90, 14, 2)))
    before = snapshot(raw)
    assert main(["run", "tiny", f"data.root={raw}", f"runs_dir={tmp_path / 'runs'}"]) == 2
    one_line_error(capsys, "data.root", str(raw), "not a d2m-lab dataset")
    assert snapshot(raw) == before and [p for p in tmp_path.iterdir() if p.is_dir() and p.name.startswith(".raw")] == []


def test_default_source_uses_an_existing_canonical_dataset_and_says_so(tmp_path, capsys):
    root = fake_dataset(tmp_path / "prepared", "prepare")
    before = snapshot(root)
    assert ensure_dataset({"root": str(root), "source": "synth"}) == root
    err = capsys.readouterr().err
    assert "data.root" in err and "'prepare'" in err and "using it" in err
    assert snapshot(root) == before


# ---- file-system failures: one line, nothing partial ------------------------------------------------

@contextlib.contextmanager
def tmpfs(path: Path, size: str, readonly: bool = False):
    """A small tmpfs at `path` (needs root and mount rights; the test is skipped without them)."""
    path.mkdir()
    options = f"size={size}" + (",ro" if readonly else "")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_full_disk_during_a_dataset_build_is_one_line_and_leaves_nothing(tmp_path, capsys):
    with tmpfs(tmp_path / "disk", "300k") as disk:
        out = disk / "synth"
        assert main(["data", "synth", "--out", str(out), *TINY_SYNTH]) == 2
        last = one_line_error(capsys, str(out), "No space left on device")
        assert "nothing was written" in last
        assert list(disk.iterdir()) == []  # neither the dataset nor a temporary folder nor a lock file


def test_read_only_or_forbidden_out_is_one_line(tmp_path, capsys):
    if os.geteuid() == 0:
        ctx = tmpfs(tmp_path / "ro", "1m", readonly=True)
    else:
        (tmp_path / "ro").mkdir()
        (tmp_path / "ro").chmod(0o500)
        ctx = contextlib.nullcontext(tmp_path / "ro")
    with ctx as ro:
        for out in (ro / "synth", ro / "deeper" / "synth"):
            assert main(["data", "synth", "--out", str(out), *TINY_SYNTH]) == 2
            last = one_line_error(capsys, str(out))
            assert "Read-only file system" in last or "Permission denied" in last


def test_write_errors_inside_a_build_name_out_and_the_file(tmp_path, monkeypatch):
    import datamodules.dataset as dataset

    def full(path, arrays):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(dataset, "_save_npz", full)
    with pytest.raises(D2MError, match=r"cannot write dataset .*out \(clips/a\.npz\): No space left") as err:
        fake_dataset(tmp_path / "out", "synth")
    assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


# ---- temporary folders of interrupted builds ---------------------------------------------------------

def test_stale_build_folders_are_swept_live_ones_kept(tmp_path):
    target = tmp_path / "synth"
    stale = tmp_path / ".synth.k3j_x9ab"  # an older build killed by SIGKILL: no lock
    stale.mkdir()
    (stale / "clips").mkdir()
    (stale / "clips" / "x.npz").write_bytes(b"1" * 1000)
    unrelated = tmp_path / ".synth.notes"
    unrelated.mkdir()
    with atomic_dir(target) as live:  # a build in progress holds its lock: another sweep keeps it
        assert not stale.exists()
        assert sweep_stale(target) == [] and live.is_dir()
        (live / "a").write_text("1")
    assert (target / "a").read_text() == "1" and unrelated.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".synth.notes", "synth"]


def test_sigterm_during_synth_removes_its_temporary_folder(tmp_path):
    out = tmp_path / "synth"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "d2m", "data", "synth", "--out", str(out), "--clips-per-style",
                             "12", "--seconds", "30"], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list(tmp_path.glob(".synth.*/audio/*.wav")):
        time.sleep(0.2)
    assert list(tmp_path.glob(".synth.*/audio/*.wav")), "the build never started writing"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1].startswith("d2m: terminated")
    assert list(tmp_path.iterdir()) == []


def test_sigkilled_synth_leftovers_are_swept_by_the_next_build(tmp_path):
    out = tmp_path / "synth"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "d2m", "data", "synth", "--out", str(out), "--clips-per-style",
                             "12", "--seconds", "30"], cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list(tmp_path.glob(".synth.*/audio/*.wav")):
        time.sleep(0.2)
    proc.kill()  # SIGKILL: no chance to clean up
    proc.wait()
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert len(leftovers) == 2 and leftovers[1] == leftovers[0] + ".lock"  # the folder and its lock
    build_synthetic(out, SynthConfig(clips_per_style=3, seconds=4.5))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synth"]


def test_a_failed_replacement_keeps_the_old_dataset(tmp_path):
    out = fake_dataset(tmp_path / "synth", "synth")
    before = snapshot(out)
    with pytest.raises(D2MError, match="'bad'"):
        with dataset_writer(out, name="synth", styles=["zumba"], feature_spec={}, feature_dim=28, sample_rate=22050,
                            source="synth", force=True) as writer:
            writer.add_clip(Clip("bad", "salsa", "train", poses=np.zeros((40, 14, 2)), features=np.zeros((40, 28)),
                                 beats=np.arange(3)))
    assert snapshot(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["synth"]
