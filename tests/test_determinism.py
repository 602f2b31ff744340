"""Same seed, same numbers: two independent CPU runs of the tiny config write identical metrics.json."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def test_two_cpu_runs_with_one_seed_give_identical_metrics(tiny_dataset, tmp_path):
    common = ["preset=tiny", f"data.root={tiny_dataset}", "data.source=canonical", "seed=3", "trainer.threads=1"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-m", "d2m", "run", "tiny", *common, f"runs_dir={tmp_path / name}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
             for name in ("a", "b")]  # separate runs folders: nothing trained by one is reused by the other
    folders = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]
        folders.append(Path(out.strip().splitlines()[-1]))
    a, b = ((f / "metrics.json").read_bytes() for f in folders)
    assert folders[0] != folders[1] and folders[0].name == folders[1].name
    assert b"evaluation/" in a and b"reference/" in a and a == b
