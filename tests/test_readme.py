"""Every fenced ```bash block of README.md runs, so the README cannot drift from the code.

The commands run in order, in one temporary folder, through the `d2m` entry point in this process
(no interpreter start per command), at test sizes: `preset=tiny`, a private runs folder and, where a
command names no dataset, the session's tiny synthetic dataset. What is changed and why is listed
below; anything the README says that this test cannot run is either in SKIPPED with the reason or
a failure, so a new kind of command cannot slip in untested.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from d2m.cli import main

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]

# commands too long for a test, with where their tiny equivalent is tested
SKIPPED = {
    "make demo": "about 10 minutes; its matrix at tiny size is tested in test_pipeline.py "
                 "(test_every_make_target_matrix_runs_on_tiny_data)",
    "make test": "the test suite itself, this test included",
}
# overrides a test machine cannot or need not honour, and their tiny-size replacements
SUBSTITUTIONS = {
    "trainer.accelerator=cuda": "trainer.accelerator=cpu",  # no GPU is assumed here
    "trainer.precision=bf16-mixed": "trainer.precision=32-true",  # a GPU setting
    "style.hidden=512": "style.hidden=8",  # paper width; the tiny preset's is 8
}
TRAINING_COMMANDS = ("run", "train")
ASSIGNMENT = re.compile(r"^(\w+)=\$\(d2m$")  # NAME=$(d2m ...): the command's last output line into $NAME


def bash_blocks(text: str) -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```", text, flags=re.M | re.S)


def commands(block: str) -> list[list[str]]:
    """The block's commands as words: comments dropped, continuation lines joined."""
    out, pending = [], ""
    for raw in block.splitlines():
        line = pending + raw
        pending = ""
        if line.rstrip().endswith("\\"):
            pending = line.rstrip()[:-1] + " "
            continue
        words = shlex.split(line, comments=True)
        if words:
            out.append(words)
    return out


def _own_data_input(dataset: Path, where: Path) -> None:
    """`my_dance/`, as the README's own-data section lays it out, made from the tiny dataset's clips."""
    clips = pd.read_csv(dataset / "clips.csv")
    for clip in clips.itertuples():
        folder = where / "my_dance" / "keypoints" / clip.style
        folder.mkdir(parents=True, exist_ok=True)
        with np.load(dataset / "clips" / f"{clip.clip_id}.npz") as npz:
            np.save(folder / f"clip_{clip.Index:03d}.npy", npz["poses"])
        audio = where / "my_dance" / "audio"
        audio.mkdir(parents=True, exist_ok=True)
        shutil.copy(dataset / "audio" / f"{clip.clip_id}.wav", audio / f"clip_{clip.Index:03d}.wav")


class Shell:
    """Just enough shell for the README: `d2m ...`, `NAME=$(d2m ...)`, `$NAME`, and `make TARGET`."""

    def __init__(self, dataset: Path, runs: Path):
        self.dataset, self.runs = dataset, runs
        self.variables: dict[str, str] = {}
        self.ran: list[str] = []

    def test_sized(self, words: list[str]) -> list[str]:
        words = [SUBSTITUTIONS.get(w, w) for w in words]
        if words[0] in TRAINING_COMMANDS:
            words += ["preset=tiny", f"runs_dir={self.runs}"]
            if not any(w.startswith("data.root=") for w in words):
                words += [f"data.root={self.dataset}", "data.source=canonical"]
        return words

    def d2m(self, words: list[str]) -> str:
        argv = self.test_sized(words)
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            status = main(argv)
        assert status == 0, f"README command `d2m {shlex.join(words)}` failed: {stderr.getvalue().strip()[-500:]}"
        self.ran.append("d2m " + shlex.join(words))
        return stdout.getvalue().strip().splitlines()[-1] if stdout.getvalue().strip() else ""

    def run(self, words: list[str]) -> None:
        if " ".join(words) in SKIPPED:
            return
        m = ASSIGNMENT.match(words[0])
        target = None
        if m and words[-1].endswith(")"):
            target, words = m.group(1), ["d2m", *words[1:-1], words[-1][:-1]]
        words = [re.sub(r"\$(\w+)", lambda v: self.variables[v.group(1)], w) for w in words]
        assert words[0] == "d2m", f"README command `{' '.join(words)}` is neither d2m nor a skipped one: map it here"
        out = self.d2m(words[1:])
        if target:
            self.variables[target] = out


def test_every_bash_block_of_the_readme_runs(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("D2M_PROGRESS", "off")
    _own_data_input(tiny_dataset, tmp_path)
    shell = Shell(tiny_dataset, tmp_path / "runs")
    blocks = bash_blocks((ROOT / "README.md").read_text())
    assert blocks, "README.md has no ```bash block"
    every = [c for block in blocks for c in commands(block)]
    for command in every:
        shell.run(command)
    assert set(SKIPPED) <= {" ".join(c) for c in every}, "a skipped command left the README: drop it from SKIPPED"
    assert len(shell.ran) == len(every) - len(SKIPPED)
    assert (tmp_path / "data" / "mine" / "dataset.json").is_file()  # the own-data workflow's dataset ...
    assert (tmp_path / "my_dance.mp4").is_file()  # ... and its dance


def test_commands_join_continuations_and_drop_comments():
    block = "make demo    # the main job\nd2m run demo \\\n  seed=1   # a comment\n\n"
    assert commands(block) == [["make", "demo"], ["d2m", "run", "demo", "seed=1"]]
    assert commands('run=$(d2m run demo seed=1)   # the run directory\nd2m evaluate "$run"') == [
        ["run=$(d2m", "run", "demo", "seed=1)"], ["d2m", "evaluate", "$run"]]
