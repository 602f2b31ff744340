"""Atomic writes: a target is complete or untouched, never half-written."""

import pytest

from datamodules.atomic import atomic_dir, read_json, write_json, write_with


def test_write_json_round_trip_and_no_temp_left(tmp_path):
    target = tmp_path / "sub" / "m.json"
    write_json(target, {"b": 1.5, "a": [1, 2]})
    assert read_json(target) == {"a": [1, 2], "b": 1.5}
    assert [p.name for p in target.parent.iterdir()] == ["m.json"]


def test_failed_write_keeps_old_content(tmp_path):
    target = tmp_path / "m.json"
    write_json(target, {"v": 1})

    def boom(tmp):
        tmp.write_text("partial")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        write_with(target, boom)
    assert read_json(target) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]


def test_atomic_dir_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / "ds"
    with pytest.raises(ValueError):
        with atomic_dir(target) as tmp:
            (tmp / "a.txt").write_text("x")
            raise ValueError("stop")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("x")
    assert (target / "a.txt").read_text() == "x"


def test_results_get_the_usual_permissions(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        write_json(tmp_path / "m.json", {})
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "x").write_text("1")
    finally:
        os.umask(mask)
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755
