"""generate_from_run: a run directory and a music file in, keypoints and stick-figure videos out."""

import json
import re
import subprocess
import warnings

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from common.atomic import write_json, write_text
from common.errors import D2MError
from datamodules.audio import feature_spec, write_wav
from datamodules.config import FeatureConfig
from experiments.generate import generate_from_run, sample_paths
from experiments.presets import PRESETS
from lightning_modules.composition_module import CompositionModule

TINY = PRESETS["tiny"]
SR = 22050


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory whose only content is what generation needs: config, stages.json, a checkpoint."""
    root = tmp_path_factory.mktemp("run")
    module = CompositionModule(TINY["composition"], TINY["decomposition"], TINY["style"], feature_dim=28,
                               class_names=["ballet", "hiphop", "zumba"], pose_mean=[240.0] * 28,
                               pose_std=[40.0] * 28, feature_mean=[0.0] * 28, feature_std=[5.0] * 28,
                               feature_spec=feature_spec(FeatureConfig()))
    trainer = pl.Trainer(max_steps=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu")
    batch = {"poses": torch.randn(2, 3, 32, 28), "features": torch.randn(2, 96, 28), "label": torch.zeros(2)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, DataLoader([{k: v[0] for k, v in batch.items()}] * 2, batch_size=2))
    trainer.save_checkpoint(root / "composition.ckpt")
    write_text(root / "config.yaml", "name: test\n")
    write_json(root / "stages.json", {"composition": {"checkpoint": "composition.ckpt"}})
    return root


@pytest.fixture(scope="module")
def music(tmp_path_factory):
    """Five seconds of clicks on a 120 bpm grid over a quiet tone."""
    path = tmp_path_factory.mktemp("audio") / "music.wav"
    t = np.arange(int(5.0 * SR)) / SR
    wave = 0.1 * np.sin(2 * np.pi * 220 * t)
    for beat in np.arange(0, 5.0, 0.5):
        i = int(beat * SR)
        wave[i:i + 600] += 0.8 * np.exp(-np.arange(600) / 80.0)
    write_wav(path, wave.astype(np.float32), SR)
    return path


def test_keypoints_match_the_music_length(run_dir, music, tmp_path):
    out = tmp_path / "dance.npy"
    written = generate_from_run(run_dir, music, out, samples=2, seed=0, progress=False)
    assert written == [out, out.with_suffix(".json")]
    keypoints = np.load(out)
    assert keypoints.shape == (2, 75, 14, 2)  # 5 s at 15 fps
    assert not np.allclose(keypoints[0], keypoints[1])
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["fps"] == 15 and meta["frames"] == 75 and len(meta["joints"]) == 14
    np.testing.assert_allclose(np.array(meta["keypoints"]), keypoints, atol=0.01)
    again = tmp_path / "again.npy"
    generate_from_run(run_dir, music, again, samples=2, seed=0, progress=False)
    np.testing.assert_array_equal(np.load(again), keypoints)
    generate_from_run(run_dir, music, again, samples=2, seed=1, progress=False)
    assert not np.allclose(np.load(again), keypoints)


def test_beat_warped_dance_keeps_its_length(run_dir, music, tmp_path):
    out = tmp_path / "warped.npy"
    generate_from_run(run_dir, music, out, seed=0, beat_warp=True, progress=False)
    assert np.load(out).shape == (1, 75, 14, 2)


def test_seam_blended_dance_differs_only_at_the_start_of_later_units(run_dir, music, tmp_path):
    raw, blended = tmp_path / "raw.npy", tmp_path / "blended.npy"
    generate_from_run(run_dir, music, raw, seed=0, progress=False)
    generate_from_run(run_dir, music, blended, seed=0, seam_blend=4, progress=False)
    a, b = np.load(raw), np.load(blended)
    moved = np.abs(a - b).reshape(75, -1).max(axis=1) > 1e-3  # frames the blend changed
    assert moved[32] and moved[64]  # the first frame of units 2 and 3: moved onto the unit before
    assert not moved[:32].any() and not moved[36:64].any() and not moved[68:].any()
    assert json.loads(blended.with_suffix(".json").read_text())["seam_blend_frames"] == 4


def test_gif_per_sample(run_dir, music, tmp_path):
    from PIL import Image

    out = tmp_path / "dance.gif"
    written = generate_from_run(run_dir, music, out, samples=2, seed=0, progress=False)
    assert written[:2] == sample_paths(out, 2) == [tmp_path / "dance_0.gif", tmp_path / "dance_1.gif"]
    assert (tmp_path / "dance.npy").is_file() and (tmp_path / "dance.json").is_file()
    with Image.open(written[0]) as gif:
        assert gif.n_frames > 1


@pytest.mark.slow
def test_mp4_carries_the_music_for_its_duration(run_dir, music, tmp_path):
    import imageio_ffmpeg

    out = tmp_path / "dance.mp4"
    (video, *_) = generate_from_run(run_dir, music, out, seed=0, progress=False)
    err = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(video)],
                         capture_output=True, text=True).stderr
    h, m, s = re.search(r"Duration: (\d+):(\d+):([\d.]+)", err).groups()
    assert abs(int(h) * 3600 + int(m) * 60 + float(s) - 5.0) < 0.2
    assert re.search(r"Stream #\S+.*: Audio:", err)


@pytest.mark.parametrize("kind", ["empty", "silent", "corrupt", "missing"])
def test_bad_audio_is_a_clear_error(run_dir, tmp_path, kind):
    path = tmp_path / "bad.wav"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "silent":
        write_wav(path, np.zeros(3 * SR, dtype=np.float32), SR)
    elif kind == "corrupt":
        path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" * 10)
    with pytest.raises(D2MError, match={"empty": "empty", "silent": "silent", "corrupt": "decode",
                                        "missing": "not found"}[kind]):
        generate_from_run(run_dir, path, tmp_path / "out.npy", progress=False)
    assert not (tmp_path / "out.npy").exists()


def test_bad_requests_are_clear_errors(run_dir, music, tmp_path):
    with pytest.raises(D2MError, match="unsupported file type"):
        generate_from_run(run_dir, music, tmp_path / "dance.avi", progress=False)
    with pytest.raises(D2MError, match="samples"):
        generate_from_run(run_dir, music, tmp_path / "dance.npy", samples=0, progress=False)
    with pytest.raises(D2MError, match="not found|not a d2m-lab run"):
        generate_from_run(tmp_path / "nowhere", music, tmp_path / "dance.npy", progress=False)
