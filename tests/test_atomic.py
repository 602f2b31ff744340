"""Atomic writes: a target is complete or untouched, never half-written."""

import pytest

from common.atomic import atomic_dir, read_json, write_json, write_with


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


def test_a_write_under_a_file_is_one_clear_error(tmp_path):
    from common.errors import D2MError

    (tmp_path / "f").write_text("keep")
    with pytest.raises(D2MError, match=r"cannot write .*m\.json: .*f is a file, not a folder"):
        write_json(tmp_path / "f" / "sub" / "m.json", {})
    assert (tmp_path / "f").read_text() == "keep"


def test_atomic_dir_replaces_a_non_empty_folder_only_when_allowed(tmp_path):
    from common.atomic import WriteError

    target = tmp_path / "ds"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(WriteError, match="not empty"):
        with atomic_dir(target, replace=False) as tmp:
            (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["old.txt"]
    with atomic_dir(target, replace=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # the old folder, temp and lock are gone


def test_probe_write_reports_nothing_where_writing_works(tmp_path):
    from common.atomic import probe_write

    assert probe_write(tmp_path, 10_000) is None and list(tmp_path.iterdir()) == []
    assert probe_write(tmp_path / "missing", 10) is not None
