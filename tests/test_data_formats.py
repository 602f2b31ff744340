"""Round trips of every on-disk format, and the bad-input cases: clear errors, nothing partial."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from common.errors import D2MError
from datamodules.dataset import CanonicalDataset, Clip, dataset_writer
from datamodules.import_d2m import import_d2m
from datamodules.prepare import PrepareConfig, prepare_dataset
from datamodules.skeleton import flatten

SR = 22050
STYLES = ["zumba", "ballet", "hiphop"]


def music(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    wave = 0.2 * np.sin(2 * np.pi * rng.uniform(200, 400) * t)
    for onset in np.arange(0.2, seconds, 0.5):
        i = int(onset * SR)
        wave[i : i + 400] += 0.5 * rng.standard_normal(min(400, t.size - i))
    return wave.astype(np.float32)


def random_clip(clip_id: str, style: str, split: str, n: int = 64, seed: int = 0) -> Clip:
    rng = np.random.default_rng(seed)
    return Clip(clip_id, style, split, poses=rng.uniform(0, 400, (n, 14, 2)).astype(np.float32),
                features=rng.standard_normal((n, 28)).astype(np.float32), beats=np.arange(3, n, 8))


def write_small(out, clips, **extra):
    with dataset_writer(out, name="t", styles=STYLES, feature_spec={"kind": "x"}, feature_dim=28,
                        sample_rate=SR, source="test", **extra) as w:
        for c in clips:
            w.add_clip(c, source="test")
    return out


# ---- canonical format --------------------------------------------------------------------------

def test_canonical_round_trip(tmp_path):
    splits = ["train", "train", "val", "test"]
    clips = [random_clip(f"c{i}", STYLES[i % 3], splits[i % 4], seed=i) for i in range(8)]
    clips[0].confidence = np.ones((64, 14), np.float32)
    clips[0].extra = {"tempo": np.float32(101.0)}
    root = write_small(tmp_path / "ds", clips)
    ds = CanonicalDataset(root)
    assert ds.styles == STYLES and ds.feature_dim == 28 and ds.meta["counts"]["clips"] == 8
    assert not ds.meta["has_audio"]
    for c in clips:
        back = ds.load_clip(c.clip_id)
        assert back.style == c.style and back.split == c.split
        assert np.array_equal(back.poses, c.poses) and np.array_equal(back.features, c.features)
        assert np.array_equal(back.beats, c.beats)
    assert np.array_equal(ds.load_clip("c0").confidence, clips[0].confidence)
    assert float(ds.load_clip("c0").extra["tempo"]) == 101.0
    train = [c for c in clips if c.split == "train"]
    train_poses = np.concatenate([flatten(c.poses) for c in train])
    assert np.allclose(ds.stats.pose_mean, train_poses.mean(0), atol=1e-3)
    wanted = [c.clip_id for c in clips if c.split == "val" and c.style == "hiphop"]
    assert [c.clip_id for c in ds.load_clips("val", styles=["hiphop"])] == wanted


def test_reader_errors_name_the_file(tmp_path):
    clips = [random_clip("a", "zumba", "train"), random_clip("b", "ballet", "val")]
    root = write_small(tmp_path / "ds", clips)
    ds = CanonicalDataset(root)
    with pytest.raises(D2MError, match="unknown style 'salsa'"):
        ds.load_clips("train", styles=["salsa"])
    with pytest.raises(D2MError, match="unknown split"):
        ds.load_clips("training")
    (root / "stats.npz").unlink()
    with pytest.raises(D2MError, match="stats.npz"):
        _ = CanonicalDataset(root).stats
    (root / "clips" / "b.npz").unlink()
    with pytest.raises(D2MError, match="b.npz"):
        ds.load_clip("b")
    with pytest.raises(D2MError, match="no dataset.json"):
        CanonicalDataset(tmp_path)


def test_a_bad_clip_leaves_no_partial_dataset(tmp_path):
    out = tmp_path / "ds"
    bad = random_clip("bad", "zumba", "train")
    bad.poses[5, 3, 0] = np.nan
    with pytest.raises(D2MError, match="'bad'.*NaN"):
        write_small(out, [random_clip("ok", "zumba", "train"), bad])
    assert not out.exists() and list(tmp_path.iterdir()) == []
    with pytest.raises(D2MError, match="unknown style 'salsa'"):
        write_small(out, [random_clip("s", "salsa", "train")])
    assert not out.exists()
    # an existing dataset survives a failed rebuild, even a forced one
    write_small(out, [random_clip("ok", "zumba", "train")])
    with pytest.raises(D2MError, match="'bad'.*NaN"):
        write_small(out, [random_clip("x", "zumba", "train"), bad], force=True)
    assert CanonicalDataset(out).clip_ids() == ["ok"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


# ---- the original release's layout -------------------------------------------------------------

def make_release(root, videos_per_style=3, units_per_clip=3):
    """A small fixture in the layout of NVlabs/Dancing2Music's data.zip."""
    rng = np.random.default_rng(0)
    data = root / "data"
    expected = {}
    for style in STYLES:
        lines = []
        for v in range(videos_per_style):
            clip_dir = data / style / f"vid{v}" / "7"
            (clip_dir / "unit").mkdir(parents=True)
            (clip_dir / "aud").mkdir()
            units = [rng.uniform(0, 300, (32, 14, 2)).astype(np.float32) for _ in range(units_per_clip)]
            for u, unit in enumerate(units):  # names sort wrongly as text (10 before 2): order is numeric
                np.save(clip_dir / "unit" / f"{[2, 10, 11][u]}.npy", unit)
                lines.append(f"data/{style}/vid{v}/7/unit/{[2, 10, 11][u]}.npy")
            seq = np.stack(units[:3])
            (clip_dir / "unitseq3").mkdir()
            np.save(clip_dir / "unitseq3" / "0.npy", seq)
            aud = rng.standard_normal((units_per_clip * 32 + 5, 28)).astype(np.float32)
            np.save(clip_dir / "aud" / "c7_fps15.npy", aud)
            expected[f"{style}_vid{v}_7"] = (np.concatenate(units), aud[: units_per_clip * 32])
        (data / "unitList").mkdir(exist_ok=True)
        (data / "unitList" / f"{style}_unit.txt").write_text("\n".join(lines) + "\n")
    (data / "stats").mkdir()
    for name in ("all_onbeat_mean", "all_onbeat_std", "all_aud_mean", "all_aud_std"):
        np.save(data / "stats" / f"{name}.npy", rng.uniform(1, 2, 28).astype(np.float32))
    return root, expected


def test_import_d2m_round_trip_keeps_all_styles(tmp_path):
    src, expected = make_release(tmp_path / "release")
    out = import_d2m(src, tmp_path / "d2m")
    ds = CanonicalDataset(out)
    assert ds.styles == STYLES
    assert set(ds.clip_ids()) == set(expected)
    for clip_id, (poses, aud) in expected.items():
        clip = ds.load_clip(clip_id)
        assert np.array_equal(clip.poses, poses) and np.array_equal(clip.features, aud)
        assert list(clip.beats[:4]) == [3, 11, 19, 27]
    # three videos per style: one each for train, val and test, never a video in two splits
    table = ds.clips
    for style in STYLES:
        assert sorted(table[table["style"] == style]["split"]) == ["test", "train", "val"]
    with np.load(out / "stats.npz") as stats:
        assert stats["original_pose_mean"].shape == (28,)
        assert stats["pose_mean"].shape == (28,)
    assert ds.meta["unit_lists"]["hiphop_unit.txt"] == 9


def test_import_d2m_bad_unit_shape(tmp_path):
    src, _ = make_release(tmp_path / "release", videos_per_style=1)
    bad = src / "data" / "ballet" / "vid0" / "7" / "unit" / "10.npy"
    np.save(bad, np.zeros((30, 14, 2), np.float32))
    with pytest.raises(D2MError, match="10.npy.*shape") as err:
        import_d2m(src, tmp_path / "out")
    assert "(32, 14, 2)" in str(err.value)
    assert not (tmp_path / "out").exists()


# ---- your own data: OpenPose JSON and .npy -----------------------------------------------------

def dance(n: int, seed: int) -> np.ndarray:
    """(n, 14, 2) smooth motion around a standing body."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(100, 400, (1, 14, 2))
    t = np.arange(n)[:, None, None]
    return base + 20 * np.sin(2 * np.pi * t / 15.0 + rng.uniform(0, 6, (1, 14, 2)))


def openpose_frame(joints: np.ndarray, layout: int) -> dict:
    if layout == 25:
        full = np.zeros((25, 3))
        ours_at = [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14]
        full[ours_at, :2] = joints
        full[ours_at, 2] = 0.9
        full[8] = [(joints[8, 0] + joints[11, 0]) / 2, joints[8, 1], 0.9]  # MidHip
    else:
        full = np.zeros((18, 3))
        full[:14, :2] = joints
        full[:14, 2] = 0.9
    return {"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d": full.ravel().tolist()}]}


def make_own_data(root, layout="json25"):
    """Two styles by folder name: JSON (30 fps) for ballet, .npy (30 fps) for zumba."""
    kp, audio = root / "keypoints", root / "audio"
    truth = {}
    for i, style in enumerate(["ballet", "zumba", "ballet", "zumba"]):
        clip_id = f"clip{i}"
        poses30 = dance(180, i)  # 6 s at 30 fps
        truth[clip_id] = poses30
        wav = audio / style / f"{clip_id}.wav" if i == 3 else audio / f"{clip_id}.wav"  # found recursively
        wav.parent.mkdir(parents=True, exist_ok=True)
        sf.write(wav, music(6.0, i), SR)
        if style == "ballet" and layout.startswith("json"):
            folder = kp / style / clip_id
            folder.mkdir(parents=True)
            for t in range(poses30.shape[0]):
                frame = openpose_frame(poses30[t], 25 if layout == "json25" else 18)
                if t == 40:  # a missed detection: zeros with no confidence
                    frame["people"][0]["pose_keypoints_2d"][3 * 4 : 3 * 4 + 3] = [0.0, 0.0, 0.0]
                (folder / f"{clip_id}_{t:012d}_keypoints.json").write_text(json.dumps(frame))
        else:
            (kp / style).mkdir(parents=True, exist_ok=True)
            conf = np.full((180, 14, 1), 0.8)
            np.save(kp / style / f"{clip_id}.npy", np.concatenate([poses30, conf], axis=2))
    return kp, audio, truth


@pytest.mark.parametrize("layout", ["json25", "json18"])
def test_prepare_round_trip(tmp_path, layout):
    kp, audio, truth = make_own_data(tmp_path, layout)
    out = prepare_dataset(kp, audio, tmp_path / "ds")
    ds = CanonicalDataset(out)
    assert ds.styles == ["zumba", "ballet"]  # known order, only the styles present
    assert set(ds.clip_ids()) == set(truth)
    for clip_id, poses30 in truth.items():
        clip = ds.load_clip(clip_id)
        assert clip.style == ("ballet" if clip_id in ("clip0", "clip2") else "zumba")
        assert clip.poses.shape == (90, 14, 2)  # 6 s at 15 fps (fps_in from the music's length)
        assert clip.features.shape == (90, 28)
        expected = poses30[::2]
        if clip.style == "ballet" and layout.startswith("json"):  # the missed wrist at frame 40: interpolated
            assert np.allclose(clip.poses[20, 4], expected[20, 4], atol=3.0)
            clip.poses[20, 4] = expected[20, 4]
        assert np.allclose(clip.poses, expected, atol=1e-3)
        assert (out / "audio" / f"{clip_id}.wav").is_file()
    if layout.startswith("json"):
        assert ds.load_clip("clip0").confidence[20, 4] == 0.0  # the missed wrist stays marked


def test_prepare_labels_csv_and_explicit_fps(tmp_path):
    kp, audio, truth = make_own_data(tmp_path, "json25")
    flat = tmp_path / "flat"
    shutil.copytree(kp / "zumba", flat)
    labels = {"clip_id": ["clip1", "clip3"], "style": ["hiphop", "hiphop"], "split": ["train", "test"]}
    pd.DataFrame(labels).to_csv(tmp_path / "labels.csv", index=False)
    out = prepare_dataset(flat, audio, tmp_path / "ds", labels_csv=tmp_path / "labels.csv", fps_in=30)
    ds = CanonicalDataset(out)
    assert ds.styles == ["hiphop"] and ds.clip_ids("test") == ["clip3"]


def _expect_failure(tmp_path, kp, audio, pattern, labels=None):
    out = tmp_path / "out"
    with pytest.raises(D2MError, match=pattern) as err:
        prepare_dataset(kp, audio, out, labels_csv=labels)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []
    return str(err.value)


def test_prepare_wrong_shape(tmp_path):
    kp, audio, _ = make_own_data(tmp_path, "npy")
    np.save(kp / "zumba" / "clip3.npy", np.zeros((180, 17, 2)))
    assert "clip3.npy" in _expect_failure(tmp_path, kp, audio, "wrong keypoint shape")


def test_prepare_wrong_json_shape(tmp_path):
    kp, audio, _ = make_own_data(tmp_path, "json25")
    frame = next((kp / "ballet" / "clip2").glob("*.json"))
    frame.write_text(json.dumps({"people": [{"pose_keypoints_2d": [1.0] * 60}]}))
    assert frame.name in _expect_failure(tmp_path, kp, audio, "wrong keypoint shape")


def test_prepare_nans(tmp_path):
    kp, audio, _ = make_own_data(tmp_path, "npy")
    arr = np.load(kp / "ballet" / "clip2.npy")
    arr[10, 3, 1] = np.nan
    np.save(kp / "ballet" / "clip2.npy", arr)
    assert "clip2.npy" in _expect_failure(tmp_path, kp, audio, "NaN")


def test_prepare_unknown_style(tmp_path):
    kp, audio, _ = make_own_data(tmp_path, "npy")
    (kp / "zumba").rename(kp / "salsa")
    message = _expect_failure(tmp_path, kp, audio, "unknown style 'salsa'")
    assert "clip1" in message or "clip3" in message


def test_prepare_bad_audio(tmp_path):
    kp, audio, _ = make_own_data(tmp_path, "npy")
    (audio / "clip2.wav").write_bytes(b"")
    assert "clip2.wav" in _expect_failure(tmp_path, kp, audio, "empty")
    sf.write(audio / "clip2.wav", np.zeros(SR * 6, np.float32), SR)
    assert "clip2.wav" in _expect_failure(tmp_path, kp, audio, "silent")
    sf.write(audio / "clip2.wav", music(1.5), SR)
    assert "clip2.wav" in _expect_failure(tmp_path, kp, audio, "too short")


# ---- timing: keypoints and music must agree ---------------------------------------------------------

def test_prepare_refuses_a_dance_much_longer_than_its_music(tmp_path):
    kp, audio, _ = make_own_data(tmp_path, "npy")
    np.save(kp / "zumba" / "clip3.npy", dance(900, 3))  # 30 s at 30 fps beside 6 s of music
    message = _expect_failure(tmp_path, kp, audio, r"clip 'clip3'.*30 fps \(inferred from all clips")
    assert "clip3.npy" in message and "clip3.wav" in message and "differ by 24.00 s" in message
    out = tmp_path / "out"
    with pytest.raises(D2MError, match=r"clip 'clip3'.*30\.00 s .*at --fps 30.*6\.00 s; they differ by 24\.00 s"):
        prepare_dataset(kp, audio, out, fps_in=30)
    assert not out.exists()


@pytest.mark.parametrize("fps_in", [None, 30])
def test_prepare_refuses_truncated_music(tmp_path, fps_in):
    kp, audio, _ = make_own_data(tmp_path, "npy")
    sf.write(audio / "clip2.wav", music(4.0, 2), SR)  # 6 s of dance, music cut at 4 s
    with pytest.raises(D2MError, match=r"clip 'clip2'.*differ by 2\.00 s, more than the tolerance of 1 s"):
        prepare_dataset(kp, audio, tmp_path / "out", fps_in=fps_in)
    assert not (tmp_path / "out").exists()
    # a looser tolerance accepts it, at the folder's rate: the dance keeps its speed
    ds = CanonicalDataset(prepare_dataset(kp, audio, tmp_path / "ds", fps_in=fps_in,
                                          config=PrepareConfig(duration_tolerance=2.5)))
    assert set(ds.clips["keypoint_fps"]) == {30.0} and ds.load_clip("clip2").poses.shape[0] == 60


def test_prepare_inferred_rate_is_printed_and_a_cut_is_reported(tmp_path, capsys):
    kp, audio, truth = make_own_data(tmp_path, "npy")
    sf.write(audio / "clip1.wav", music(6.6, 1), SR)  # 0.6 s more music than dance: within the tolerance
    ds = CanonicalDataset(prepare_dataset(kp, audio, tmp_path / "ds", fps_in=30))
    err = capsys.readouterr().err
    assert "warning: keypoints and music differ by more than one frame in 1 clip(s)" in err and "'clip1'" in err
    assert "no --fps" not in err
    assert ds.load_clip("clip1").poses.shape[0] == 90  # cut to the dance, at its own speed
    assert np.allclose(ds.load_clip("clip1").poses, truth["clip1"][::2], atol=1e-3)
    prepare_dataset(kp, audio, tmp_path / "ds2")
    err = capsys.readouterr().err
    assert "no --fps given: keypoints read at 30 fps" in err and "-0.60 s (clip 'clip1')" in err


def test_prepare_labels_csv_with_a_name_column(tmp_path):
    kp, audio, _ = make_own_data(tmp_path, "npy")
    flat = tmp_path / "flat"
    flat.mkdir()
    for npy in kp.rglob("*.npy"):
        shutil.copy(npy, flat / npy.name)
    (tmp_path / "labels.csv").write_text("name,style\nclip0,hiphop\nclip1,zumba\nclip2,hiphop\nclip3,zumba\n")
    ds = CanonicalDataset(prepare_dataset(flat, audio, tmp_path / "ds", labels_csv=tmp_path / "labels.csv"))
    assert dict(zip(ds.clips["clip_id"], ds.clips["style"])) == {"clip0": "hiphop", "clip1": "zumba",
                                                                  "clip2": "hiphop", "clip3": "zumba"}


@pytest.mark.parametrize(("people", "needle"), [
    ({"id": 1}, "'people' must be a list"),
    ("nobody", "'people' must be a list"),
    ([{"pose_keypoints_2d": ["a"] * 75}], "non-numeric keypoints"),
    ([{"pose_keypoints_2d": [None] * 54}], "non-numeric keypoints"),
    (["person"], "'pose_keypoints_2d' list"),
])
def test_prepare_malformed_openpose_json_is_one_line(tmp_path, capsys, people, needle):
    from d2m.cli import main

    kp, audio, _ = make_own_data(tmp_path, "json25")
    frame = sorted((kp / "ballet" / "clip0").glob("*.json"))[7]
    frame.write_text(json.dumps({"version": 1.3, "people": people}))
    assert main(["data", "prepare", "--keypoints", str(kp), "--audio", str(audio), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("d2m: error:") and needle in err[-1] and frame.name in err[-1]
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))


def test_low_sample_rate_audio_is_warned_about(tmp_path, capsys):
    from datamodules.audio import load_audio

    low = tmp_path / "phone.wav"
    t = np.arange(8000 * 4) / 8000
    sf.write(low, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 8000)
    load_audio(low, SR)
    err = capsys.readouterr().err
    assert "phone.wav" in err and "8000 Hz" in err and "4000-6855.5 Hz band is missing" in err
    sf.write(tmp_path / "full.wav", music(4.0), SR)
    load_audio(tmp_path / "full.wav", SR)
    assert capsys.readouterr().err == ""
