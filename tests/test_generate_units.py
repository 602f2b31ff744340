"""`d2m generate` names the units of its keypoints: pixels, or normalised units for a run imported
without data statistics, which it also says on the console."""

import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import original_ckpt_fixture as fx  # noqa: E402
from music_files import write_click_track

from experiments.generate import NORMALISED_UNITS, PIXEL_UNITS, keypoint_units  # noqa: E402


def test_units_follow_the_pose_statistics():
    assert keypoint_units(torch.zeros(28), torch.ones(28)) == NORMALISED_UNITS
    assert keypoint_units(torch.full((28,), 200.0), torch.full((28,), 30.0)) == PIXEL_UNITS
    one_off = torch.ones(28)
    one_off[5] = 2.0
    assert keypoint_units(torch.zeros(28), one_off) == PIXEL_UNITS


def test_imported_run_without_data_says_its_keypoints_are_normalised(tmp_path, capsys, monkeypatch):
    from d2m.cli import main

    monkeypatch.setenv("D2M_PROGRESS", "off")  # what --quiet sets; restored after the test

    paths = fx.write_placeholders(tmp_path / "original")
    run = tmp_path / "run"
    try:
        assert main(["import-original", "--decomp", str(paths["decomp"]), "--comp", str(paths["comp"]),
                     "--style", str(paths["style"]), "--out", str(run)]) == 0
        capsys.readouterr()
        assert main(["generate", "--run", str(run), "--audio", str(write_click_track(tmp_path / "m.wav", seconds=3.0)),
                     "--out", str(tmp_path / "dance.npy"), "--quiet"]) == 0
        err = capsys.readouterr().err
        assert "no data statistics" in err and "normalised units" in err and len(err.strip().splitlines()) == 1
        meta = json.loads((tmp_path / "dance.json").read_text())
        assert meta["units"] == NORMALISED_UNITS
        keypoints = np.load(tmp_path / "dance.npy")
        assert np.abs(keypoints).max() < 10  # normalised, not hundreds of pixels
    finally:
        for ckpt in tmp_path.rglob("*.ckpt"):
            ckpt.unlink(missing_ok=True)
