"""Shared fixtures: a tiny synthetic dataset built once per test session, offline W&B."""

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_DISABLE_GIT", "true")

torch.set_num_threads(1)  # tiny models gain nothing from more threads; keeps parallel runs fair


def pytest_configure(config):
    """Compile librosa's beat tracker once, before test workers (pytest-xdist) start side by side.

    Two workers building the tiny dataset at once would both compile its numba gufuncs and can
    leave their on-disk cache mixed, after which every worker segfaults in the beat tracker.
    """
    if not hasattr(config, "workerinput"):  # the controlling process, or a run without workers
        from datamodules.audio import warm_beat_tracker

        warm_beat_tracker()


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """Three clips per style, 12 s each: enough for every stage to run a few steps."""
    from datamodules.config import FeatureConfig, SynthConfig
    from datamodules.synth import build_synthetic

    root = tmp_path_factory.mktemp("data") / "synth"
    build_synthetic(root, SynthConfig(clips_per_style=3, seconds=12.0, seed=0), FeatureConfig())
    return root


@pytest.fixture
def tiny_overrides(tiny_dataset, tmp_path) -> list[str]:
    """Overrides that point the tiny preset at the session's dataset and a private runs folder."""
    return ["preset=tiny", f"data.root={tiny_dataset}", "data.source=canonical", f"runs_dir={tmp_path / 'runs'}"]
