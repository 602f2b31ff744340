"""Console progress: the line format and its parser, the training callback, the per-cell board that
tails cell logs (fed by a fake cell process), and the silenced library noise."""

import io
import logging
import re
import subprocess
import sys
import textwrap
import time
import warnings

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from ablations.progress import CaseProgress, CellBoard, child_env, describe
from experiments.progress import ENV_MODE, format_duration, format_progress, parse_line
from experiments.progress_callback import ProgressLines, progress_setup


class _TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("seconds", "text"), [(0, "0s"), (42.4, "42s"), (212, "3m32s"), (3600, "1h00m"),
                                              (3900, "1h05m"), (float("inf"), "?"), (-1, "?")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_progress_line_round_trip():
    line = format_progress("composition", 120, 800, 3.2)
    assert line.endswith("] composition: step 120/800, 3.20 steps/s, 3m32s left")  # 680 steps / 3.2 per s
    parsed = parse_line(line)
    assert parsed["stage"] == "composition"
    assert (parsed["step"], parsed["total"], parsed["rate"], parsed["eta"]) == (120, 800, 3.2, "3m32s")
    assert parse_line(format_progress("style", 0, 12, 0.0))["step"] == 0  # no rate yet: step only
    assert "rate" not in parse_line(format_progress("style", 0, 12, 0.0))
    fast = parse_line(format_progress("style", 100, 1000, 250.0))
    assert fast["rate"] == 250.0 and fast["eta"] == "4s"


def test_parse_line_events_and_noise():
    event = parse_line("[08:46:07] decomposition: start")
    assert event == {"time": "08:46:07", "stage": "decomposition", "text": "start"}
    assert parse_line("GPU available: False, used: False") is None
    assert parse_line("`Trainer.fit` stopped: `max_steps=4` reached.") is None


def test_describe_cell_status():
    assert describe(None, 0).startswith("starting")
    assert describe(parse_line("[08:00:00] data: start"), 75) == "data running (1m15s)"
    assert describe(parse_line("[08:00:00] style: done"), 3) == "style done (3s ago)"
    assert describe(parse_line("[08:00:00] style: cached"), 61) == "style cached (1m01s ago)"
    assert (describe(parse_line("[08:00:00] decomposition: waiting"), 65)
            == "decomposition waiting for the run that trains it (1m05s)")
    assert describe(parse_line(format_progress("style", 3, 12, 1.5)), 0) == "style step 3/12, 1.50 steps/s, 6s left"


class _Linear(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_callback_prints_parseable_lines_with_step_total_and_rate():
    stream = io.StringIO()
    data = DataLoader(TensorDataset(torch.randn(10, 2), torch.randn(10, 1)), batch_size=2)  # 5 steps an epoch
    trainer = pl.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[ProgressLines("style", every=0.0, stream=stream)])
    trainer.fit(_Linear(), data)
    lines = [parse_line(line) for line in stream.getvalue().splitlines()]
    assert all(p is not None and p["stage"] == "style" for p in lines)
    assert (lines[0]["step"], lines[0]["total"]) == (0, 10)
    assert [p["step"] for p in lines[1:-1]] == list(range(1, 11))  # every batch, as every=0
    assert lines[-1]["step"] == 10 and lines[-1]["rate"] > 0 and lines[-1]["eta"] == "0s"


def test_callback_respects_its_interval():
    stream = io.StringIO()
    data = DataLoader(TensorDataset(torch.randn(10, 2), torch.randn(10, 1)), batch_size=2)
    trainer = pl.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[ProgressLines("style", every=3600.0, stream=stream)])
    trainer.fit(_Linear(), data)
    assert len(stream.getvalue().splitlines()) == 2  # the first and the last line only


@pytest.mark.parametrize(("mode", "want_bar", "bar", "n_callbacks"),
                         [("off", True, False, 0), ("lines", False, False, 1), ("lines", True, True, 1),
                          ("bar", False, True, 1)])
def test_progress_setup_by_mode(monkeypatch, mode, want_bar, bar, n_callbacks):
    monkeypatch.setenv(ENV_MODE, mode)
    show, callbacks = progress_setup("style", want_bar)
    assert show is bar and len(callbacks) == n_callbacks


def test_stage_bar_counts_the_whole_stage():
    """In a terminal the bar runs over every step of the stage (10 = 2 epochs of 5), not one epoch."""
    from experiments.progress_callback import StageBar

    bar = StageBar("style")
    data = DataLoader(TensorDataset(torch.randn(10, 2), torch.randn(10, 1)), batch_size=2)
    trainer = pl.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_model_summary=False,
                         callbacks=[bar])
    trainer.fit(_Linear(), data)
    assert trainer.progress_bar_callback is bar
    assert (bar.train_progress_bar.n, bar.train_progress_bar.total) == (10, 10)
    assert bar.train_progress_bar.desc.startswith("style (epoch 1)")


def test_board_reads_only_whole_lines_and_keeps_the_latest(tmp_path):
    log = tmp_path / "cell.log"
    log.write_text("GPU available: False\n[08:00:00] data: start\n[08:00:01] data: done\n[08:00:01] sty")
    board = CellBoard(stream=io.StringIO(), mode="lines")
    board.watch("full-s0-cpu", log)
    board.poll()
    assert board.status_lines()[0].endswith("data done (0s ago)")
    with open(log, "a") as f:
        f.write("le: start\n" + format_progress("style", 6, 12, 2.0) + "\n")
    board.poll()
    line = board.status_lines()[0]
    assert line.startswith("  full-s0-cpu [") and line.endswith("style step 6/12, 2.00 steps/s, 3s left")
    board.unwatch("full-s0-cpu")
    assert board.status_lines() == []


# A fake cell: a process that prints what a training cell prints, with pauses, to its log.
FAKE_CELL = textwrap.dedent("""
    import sys, time
    for line in sys.argv[1:]:
        print(line, flush=True)
        time.sleep(0.08)
""")
FAKE_LINES = ["[00:00:00] style: start", *(format_progress("style", s, 8, 4.0) for s in range(0, 9, 2)),
              "[00:00:01] style: done"]


def _run_fake_cell(board: CellBoard, log, label="fake-s0-cpu") -> None:
    with board:
        board.watch(label, log)
        with open(log, "w") as out:
            subprocess.run([sys.executable, "-S", "-c", FAKE_CELL, *FAKE_LINES], stdout=out,
                           stderr=subprocess.STDOUT, check=True)
        time.sleep(0.1)  # one more poll sees the last line
        board.tick()
        board.unwatch(label)
        board.print(f"  {label}: done")


def test_board_plain_lines_from_a_fake_cell(tmp_path):
    stream = io.StringIO()
    _run_fake_cell(CellBoard(stream=stream, mode="lines", interval=0.0, poll=0.02), tmp_path / "fake.log")
    out = stream.getvalue()
    assert "\r" not in out and "\x1b" not in out  # a log or a pipe gets plain lines
    lines = out.splitlines()
    assert lines[-1] == "  fake-s0-cpu: done"
    steps = [int(s.split("step ")[1].split("/")[0]) for s in lines if "step " in s]
    assert steps and steps == sorted(steps) and steps[-1] == 8
    assert re.search(r"fake-s0-cpu: style done \(\d+s ago\)$", lines[-2])


def test_board_redraws_in_place_on_a_terminal(tmp_path):
    stream = _TTY()
    _run_fake_cell(CellBoard(stream=stream, mode="bar", poll=0.02), tmp_path / "fake.log")
    out = stream.getvalue()
    assert "\x1b[1F\x1b[J" in out  # the one-line block was redrawn in place
    assert out.endswith("  fake-s0-cpu: done\n")  # the block is gone at the end, the lasting line stays
    assert "style step 8/8" in out


def test_board_off_shows_only_lasting_lines(tmp_path):
    stream = io.StringIO()
    _run_fake_cell(CellBoard(stream=stream, mode="off", poll=0.02), tmp_path / "fake.log")
    assert stream.getvalue() == "  fake-s0-cpu: done\n"


def test_child_env_asks_for_frequent_plain_lines():
    env = child_env()
    assert env[ENV_MODE] == "lines" and float(env["D2M_PROGRESS_EVERY"]) <= 5


def test_case_progress_estimates_time_left():
    stream = io.StringIO()
    progress = CaseProgress(4, stream=stream, mode="lines")
    progress.start("style original on cpu")
    assert "case 1/4 style original on cpu" in stream.getvalue() and "left" not in stream.getvalue()
    progress.finish()
    progress.finish()
    line = progress.line("decomposition VAE on cpu")
    assert "case 3/4 decomposition VAE on cpu" in line and "per case" in line and line.endswith("left")
    quiet = io.StringIO()
    CaseProgress(2, stream=quiet, mode="off").start("x")
    assert quiet.getvalue() == ""


def test_known_noise_is_silenced_and_real_warnings_still_show():
    from pytorch_lightning.utilities.warnings import PossibleUserWarning

    from experiments.quiet import install

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        install()
        install()
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning, stacklevel=1)
        warnings.warn("Found 6 module(s) in eval mode at the start of training. This may ...", PossibleUserWarning,
                      stacklevel=1)
        warnings.warn("a real problem", UserWarning, stacklevel=1)
        warnings.warn("`isinstance(x, Y)` is deprecated", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["a real problem", "`isinstance(x, Y)` is deprecated"]


def test_lightning_tip_is_dropped_other_info_kept():
    from experiments.quiet import install

    install()
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    log = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    log.addHandler(handler)
    old = log.level
    log.setLevel(logging.INFO)
    try:
        log.info("💡 Tip: For seamless cloud logging and experiment tracking, try installing [litlogger](...)")
        log.info("GPU available: False, used: False")
    finally:
        log.removeHandler(handler)
        log.setLevel(old)
    assert [r.getMessage() for r in records] == ["GPU available: False, used: False"]


def test_wandb_logger_gets_no_anonymous_setting(tmp_path):
    from pytorch_lightning.loggers import WandbLogger

    from experiments.config import load_config
    from experiments.loggers import make_loggers

    cfg = load_config("tiny", ["logging.wandb=true", f"runs_dir={tmp_path}"])
    loggers = make_loggers(cfg, "style", tmp_path, "tiny-s0")
    wandb_logger = next(lg for lg in loggers if isinstance(lg, WandbLogger))
    assert "anonymous" not in wandb_logger._wandb_init
    assert wandb_logger._wandb_init["project"] == cfg.logging.project  # the rest is passed on untouched


def test_a_stage_held_by_another_process_says_it_waits(tmp_path):
    """The shared-stage lock: a second process names the wait once, then gets the lock when it is freed."""
    from experiments.stages import stage_lock

    folder = tmp_path / "stages" / "decomposition-abc"
    code = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from experiments.stages import stage_lock
        with stage_lock(Path({str(folder)!r})):
            print("held", flush=True)
            time.sleep(1.5)
    """)
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    waits = []
    t0 = time.perf_counter()
    with stage_lock(folder, on_wait=lambda: waits.append(time.perf_counter())):
        got = time.perf_counter()
    holder.wait(timeout=30)
    assert len(waits) == 1 and waits[0] - t0 < 0.5 and got - t0 > 0.5  # said at once, then blocked
    with stage_lock(folder, on_wait=lambda: waits.append(0.0)):
        pass
    assert len(waits) == 1  # a free lock is taken without a word
