"""Faults during training leave a state the same command resumes from.

A checkpoint damaged on disk, a disk that fills up during a checkpoint write, Ctrl-C and SIGTERM
mid-training: each ends with d2m's one line (or a named fallback) and the rerun finishes.
(SIGKILL of `d2m ablate` at random moments is in test_tables.py / test_pipeline.py.)
"""

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from d2m.cli import main
from experiments.config import load_config
from experiments.run import run_experiment
from experiments.rundir import is_done, stage_dir
from experiments.timing import StepTimer
from experiments.trainer import checkpoint_problem, resumable_checkpoint

ROOT = Path(__file__).resolve().parents[1]
LONGER = ["decomposition.optim.max_steps=12", "decomposition.optim.max_epochs=100",
          "decomposition.optim.val_every_n_steps=4"]


def decomposition_dir(overrides) -> Path:
    return stage_dir(load_config("tiny", overrides), "decomposition")


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_checkpoint_problem_detects_truncation_without_unpickling(tmp_path):
    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": {"w": torch.ones(1000)}}, good)
    assert checkpoint_problem(good) is None
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(good.read_bytes()[:-3000])
    assert checkpoint_problem(bad) is not None
    (tmp_path / "text.ckpt").write_text("not a checkpoint")
    assert checkpoint_problem(tmp_path / "text.ckpt") is not None
    said = []
    assert resumable_checkpoint(bad, said.append) == str(good)
    assert "bad.ckpt is unreadable" in said[0] and "resuming from good.ckpt" in said[0]
    good.unlink()
    assert resumable_checkpoint(bad, said.append) is None and "starts afresh" in said[-1]
    assert bad.is_file()  # never deleted: training overwrites it with a good one


def test_truncated_last_checkpoint_falls_back_and_the_rerun_finishes(tiny_overrides, capsys):
    overrides = [*tiny_overrides, *LONGER]
    cfg = load_config("tiny", overrides)
    run_experiment(cfg, until="decomposition", on_event=lambda s, e: None)
    folder = decomposition_dir(overrides)
    (folder / "done.json").unlink()  # as if killed after its last checkpoint
    truncate(folder / "checkpoints" / "last.ckpt")
    capsys.readouterr()
    run_experiment(cfg, until="decomposition", on_event=lambda s, e: None)
    err = capsys.readouterr().err
    assert "last.ckpt is unreadable" in err and "resuming from best" in err
    assert is_done(folder) and (folder / "metrics.json").is_file()
    (folder / "done.json").unlink()  # every checkpoint damaged: the stage starts afresh, and says so
    for ckpt in (folder / "checkpoints").glob("*.ckpt"):
        truncate(ckpt)
    run_experiment(cfg, until="decomposition", on_event=lambda s, e: None)
    assert "starts afresh" in capsys.readouterr().err and is_done(folder)
    assert json.loads((folder / "timings.json").read_text())["steps"] == 12


def _interrupt_at_step(monkeypatch, signum: int, step: int) -> None:
    original = StepTimer.on_train_batch_end
    fired = []

    def hook(self, trainer, pl_module, outputs, batch, batch_idx):
        original(self, trainer, pl_module, outputs, batch, batch_idx)
        if trainer.global_step == step and not fired:
            fired.append(step)
            signal.raise_signal(signum)

    monkeypatch.setattr(StepTimer, "on_train_batch_end", hook)


@pytest.mark.parametrize(("signum", "code", "line"), [
    (signal.SIGINT, 130, "d2m: interrupted; rerun the same command to resume"),
    (signal.SIGTERM, 143, "d2m: terminated (SIGTERM); rerun the same command to resume"),
])
def test_interrupted_training_is_one_line_and_the_rerun_resumes(tiny_overrides, monkeypatch, capsys, request, signum,
                                                                 code, line):
    # Ctrl-C as in a foreground shell: a suite started in the background inherits SIGINT ignored
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, previous))
    overrides = [*tiny_overrides, *LONGER]
    argv = ["train", "decomposition", "tiny", *overrides]
    _interrupt_at_step(monkeypatch, signum, step=6)  # after the checkpoint of step 4
    sigint_before = signal.getsignal(signal.SIGINT)
    assert main(argv) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == line and not any("Traceback" in e or "KeyboardInterrupt" in e for e in err)
    assert signal.getsignal(signal.SIGINT) == sigint_before  # Lightning's SIG_IGN does not outlive the stage
    folder = decomposition_dir(overrides)
    assert not is_done(folder) and checkpoint_problem(folder / "checkpoints" / "last.ckpt") is None
    assert [p.name for p in (folder / "checkpoints").iterdir() if p.name.startswith(".")] == []
    monkeypatch.undo()
    assert main(argv) == 0
    assert is_done(folder)
    assert json.loads((folder / "timings.json").read_text())["steps"] == 8  # steps 5..12: resumed at step 4


def test_disk_full_during_a_checkpoint_is_one_line_and_the_rerun_finishes(tiny_overrides, capsys):
    """Files may grow to 64 kB, a checkpoint needs about 150 kB: its write fails as on a full disk.

    RLIMIT_FSIZE makes the kernel refuse the write (EFBIG; Python ignores SIGXFSZ), like ENOSPC would.
    """
    argv = ["train", "decomposition", "tiny", *tiny_overrides, *LONGER]
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))
    try:
        code = main(argv)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2
    assert last.startswith("d2m: error: cannot write checkpoint") and "File too large" in last, last
    folder = decomposition_dir([*tiny_overrides, *LONGER])
    assert list((folder / "checkpoints").iterdir()) == []  # no partial checkpoint, no temporary file
    assert main(argv) == 0 and is_done(folder)


@pytest.mark.slow
def test_sigterm_from_outside_during_training_then_resume(tiny_overrides):
    overrides = [*tiny_overrides, "decomposition.optim.max_steps=120", "decomposition.optim.max_epochs=100",
                 "decomposition.optim.val_every_n_steps=5"]
    argv = [sys.executable, "-m", "d2m", "train", "decomposition", "tiny", *overrides]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    folder = decomposition_dir(overrides)
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and not (folder / "checkpoints" / "last.ckpt").is_file():
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    assert err.strip().splitlines()[-1] == "d2m: terminated (SIGTERM); rerun the same command to resume"
    assert not is_done(folder)
    again = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "Restoring states from the checkpoint path at" in again.stdout + again.stderr
    assert json.loads((folder / "timings.json").read_text())["steps"] < 120


def test_unknown_data_style_is_refused_before_any_stage_trains(tiny_overrides, capsys):
    overrides = [*tiny_overrides, "data.styles=[salsa]"]
    assert main(["run", "tiny", *overrides]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("d2m: error: data.styles: unknown style 'salsa'") and "zumba" in last
    style = stage_dir(load_config("tiny", overrides), "style")
    assert not style.exists()  # before: refused only once the style extractor had trained


def test_timings_batch_size_is_the_configured_one():
    timer = StepTimer(warmup_steps=0, batch_size=16)

    class Module:
        device = torch.device("cpu")

    for size in (5, 16, 16):  # a partial batch first, as at the end of an epoch
        batch = {"x": torch.zeros(size, 3)}
        timer.on_train_batch_start(None, Module(), batch, 0)
        timer.on_train_batch_end(None, Module(), None, batch, 0)
    assert timer.summary("cpu")["batch_size"] == 16
    unconfigured = StepTimer(warmup_steps=0)
    for size in (5, 16):
        unconfigured.on_train_batch_start(None, Module(), {"x": torch.zeros(size, 3)}, 0)
    assert unconfigured.batch_size == 16  # without a configured size: the largest batch, never a partial one


SWALLOWED_SIGNAL = """
import os, signal, sys, time
import d2m.cli as cli

signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a foreground shell, even under a background suite

class KillsOnCollection:
    def __del__(self):  # the handler's exception raised here is dropped by Python ("Exception ignored")
        os.kill(os.getpid(), signal.{name})

def command(args):
    KillsOnCollection()
    for _ in range(200):
        time.sleep(0.01)
    print("carried on")

cli._config = command
sys.exit(cli.main(["config", "tiny"]))
"""


@pytest.mark.parametrize("name,code,line", [("SIGTERM", 143, "d2m: terminated"), ("SIGINT", 130, "d2m: interrupted")])
def test_a_signal_python_drops_in_a_callback_still_stops_the_command(name, code, line):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", SWALLOWED_SIGNAL.format(name=name)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert "carried on" not in proc.stdout
    assert proc.returncode == code, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(line)


def test_an_error_that_a_dropped_sigterm_caused_is_reported_as_the_sigterm(monkeypatch, capsys):
    """A SIGTERM raised inside a callback Python cannot raise from (a decoder's read callback) is
    dropped and sent again a moment later; the call it broke fails first. The command must stop as
    terminated (143), not as bad input (2), and must not be sent the signal again after it returned."""
    import argparse
    import types

    from common.errors import D2MError, Terminated
    from d2m import cli

    kills = []
    monkeypatch.setattr(os, "kill", lambda pid, signum: kills.append(signum))

    def broken_by_a_signal(args):
        sys.unraisablehook(types.SimpleNamespace(exc_value=Terminated(), exc_type=Terminated))
        raise D2MError("cannot decode audio file x.wav: initialization failed")

    def bad_input(args):
        raise D2MError("cannot decode audio file x.wav: not audio")

    for func, code in ((broken_by_a_signal, 143), (bad_input, 2)):
        parser = argparse.ArgumentParser()
        parser.set_defaults(func=func)
        monkeypatch.setattr(cli, "build_parser", lambda parser=parser: parser)
        assert cli.main([]) == code
        time.sleep(0.2)  # past the re-sending timer
        assert kills == []
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("d2m: terminated") and err[1].startswith("d2m: error: cannot decode")


def test_a_sigterm_inside_an_extension_import_is_reported_as_the_sigterm(monkeypatch, capsys, tmp_path):
    """A SIGTERM that lands while a pybind11 extension initialises comes back as
    ImportError("initialization failed") caused by the interrupt; `load_audio` reports that as an
    undecodable file. The command must stop as terminated (143), and a plain decode error stays 2."""
    import argparse

    import librosa
    import numpy as np
    import soundfile as sf

    from common.errors import Terminated
    from d2m import cli
    from datamodules.audio import load_audio

    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(22050, dtype=np.float32), 22050)

    def import_broken_by_a_signal(*args, **kwargs):
        try:
            raise Terminated()
        except Terminated as signal_exc:  # pybind11's PYBIND11_CATCH_INIT_EXCEPTIONS does this
            raise ImportError("initialization failed") from signal_exc

    def not_audio(*args, **kwargs):
        raise ValueError("not audio")

    for fake, code in ((import_broken_by_a_signal, 143), (not_audio, 2)):
        monkeypatch.setattr(librosa, "load", fake)
        parser = argparse.ArgumentParser()
        parser.set_defaults(func=lambda args: load_audio(wav, 22050))
        monkeypatch.setattr(cli, "build_parser", lambda parser=parser: parser)
        assert cli.main([]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("d2m: terminated")
    assert err[1] == f"d2m: error: cannot decode audio file {wav}: not audio"
