"""The GPU machine has no W&B, librosa, soundfile or submitit: the bench and training paths must not need them.

A Python environment is made that holds this environment's packages except those, and the imports,
the bench, a training run and the whole GPU check (rehearsed on the CPU) are run in it.
"""

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
ABSENT = ("wandb", "librosa", "soundfile", "_soundfile", "audioread", "imageio_ffmpeg", "submitit", "torchaudio")


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory) -> Path:
    """A venv whose site-packages links every installed package but the ABSENT ones (and this project)."""
    env_dir = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    target = Path(sysconfig.get_paths(vars={"base": str(env_dir), "platbase": str(env_dir)})["purelib"])
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        name = entry.name
        if name.startswith(ABSENT) or name.startswith("__editable__") or "d2m_lab" in name:
            continue
        (target / name).symlink_to(entry)
    return env_dir / "bin" / "python"


def run(python: Path, *args, env=None, timeout=600):
    full = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "offline", **(env or {})}
    return subprocess.run([str(python), *args], cwd=ROOT, capture_output=True, text=True, env=full, timeout=timeout)


def test_the_cli_bench_and_stages_import_without_wandb_or_librosa(bare_python):
    out = run(bare_python, "-c", "import importlib.util as u; print([u.find_spec(m) is None for m in "
              "('wandb', 'librosa', 'soundfile', 'submitit')])")
    assert out.stdout.strip() == "[True, True, True, True]", out.stderr  # the environment really lacks them
    code = ("import sys, ablations.bench, ablations.runner, ablations.gpu_check, experiments.stages, experiments.run, "
            "d2m.cli; print(sorted({m.split('.')[0] for m in sys.modules} & {'wandb', 'librosa', 'soundfile'}))")
    out = run(bare_python, "-c", code)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_the_gpu_check_rehearsed_on_the_cpu_without_them(bare_python, tiny_dataset, tmp_path):
    """Every part of `make gpu-check` on the CPU: the bench, the batch search and `d2m run` on a canonical dataset."""
    from ablations.gpu_measure import write_reference
    from datamodules.config import FeatureConfig

    data = tmp_path / "data"
    data.mkdir()
    (data / "synth").symlink_to(tiny_dataset)
    cfg = FeatureConfig()
    saw = (np.arange(3 * cfg.sample_rate) % 50 / 50.0).astype(np.float32)
    write_reference(data / "features_ref.npz", {"saw": saw}, cfg.sample_rate, cfg)
    work, pack = tmp_path / "work", tmp_path / "out"
    env = {**os.environ, "PYTHON": str(bare_python), "GPU_CHECK_REHEARSE": "1", "GPU_CHECK_DATA": str(data),
           "GPU_CHECK_PARTS": "env,features,grid,profile,maxbatch,train,bench"}
    out = subprocess.run(["bash", "scripts/gpu_check.sh", str(work), str(pack)], cwd=ROOT, capture_output=True,
                         text=True, timeout=900, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    parts = json.loads((work / "summary.json").read_text())["parts"]
    assert parts["env"]["packages"]["wandb"] == "absent" and parts["env"]["packages"]["librosa"] == "absent"
    assert "torchaudio does not import" in parts["features"]["skipped"]
    grid = pd.read_csv(work / "grid.csv")
    assert len(grid) == 8 and (grid["ms_per_step"] > 0).all() and (grid["gflop_per_step"] > 0).all()
    profiles = parts["profile"]["profiles"]
    assert [(p["module"], p["precision"]) for p in profiles] == [("decomposition", "fp32"), ("composition", "fp32"),
                                                                  ("decomposition", "bf16"), ("composition", "bf16")], \
        parts["profile"].get("line")
    assert all(p["busy_ms"] > 0 and p["top"] for p in profiles)
    for module, res in parts["maxbatch"]["modules"].items():
        assert res["largest"] >= 8, (module, res)
    tiny = parts["train"]["runs"]["tiny"]
    assert tiny["rc"] == 0, tiny
    assert Path(tiny["run_dir"], "done.json").is_file() and tiny["timings"]["composition"]["device"] == "cpu"
    bench = pd.read_csv(work / "bench-fp32" / "bench.csv")
    assert set(bench["module"]) == {"decomposition", "composition"} and (bench["ms_per_step"] > 0).all()
    assert "| decomposition | 8 | fp32 |" in (work / "summary.md").read_text()
