"""Stage folders that other matrices already trained, taken into this matrix instead of retraining.

A tuning matrix often shares its `small` cells with one run before (the same resolved config, so
the same stage keys). Naming those matrices under `reuse_stages_from` in the matrix file makes the
matrix file say where its finished stages came from, and `d2m ablate` takes each finished stage
folder of theirs that one of its pending runs needs and its own stage folder lacks: a copy made of
hard links (a plain copy across file systems) under this matrix's `runs/<name>/stages/`, whose
done.json is rewritten to name the new folder, so the matrix stands on its own afterwards (logs and
checkpoints keep the paths they were written with; a finished stage never resumes from them). Nothing
in the other matrices is changed, and a folder this matrix already has (finished or not) is left
as it is. A named matrix with no runs here (a fresh clone) is no error: its stages are trained.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from ablations.matrix import CellRun
from common.atomic import WriteError, atomic_dir, read_json, write_json
from experiments.rundir import DONE, group_dir, is_done, stage_dir
from experiments.stage_graph import stages_until

__all__ = ["reuse_stages"]


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed: a plain copy
        shutil.copy2(src, dst)


def _copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, copy_function=_link_or_copy, dirs_exist_ok=True)


def _renamed(value: Any, old: str, new: str) -> Any:
    """`value` with every string that names a path under `old` moved under `new`."""
    if isinstance(value, str) and (value == old or value.startswith(old + os.sep)):
        return new + value[len(old):]
    if isinstance(value, dict):
        return {k: _renamed(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_renamed(v, old, new) for v in value]
    return value


def _take(src: Path, dst: Path) -> None:
    """Copy a finished stage folder to `dst` (hard links) and point its done.json at `dst`; atomic."""
    try:
        with atomic_dir(dst, replace=False) as tmp:
            _copy_tree(src, tmp)
            record = read_json(tmp / DONE, {})
            # write_json replaces the file (a new inode), so the linked original keeps its own
            write_json(tmp / DONE, _renamed(record, str(src.resolve()), str(dst.resolve())))
    except WriteError:
        if not is_done(dst):  # unless a matrix beside this one took the same folder first
            raise


def reuse_stages(runs: list[CellRun], until: str, matrices: list[str]) -> list[tuple[str, Path]]:
    """Take the finished stages `runs` need from `matrices`; returns (matrix, folder) of each taken."""
    taken: list[tuple[str, Path]] = []
    for r in runs:
        for stage in stages_until(until):
            dst = stage_dir(r.cfg, stage)
            if dst.exists():
                continue
            for name in matrices:
                src = group_dir(r.cfg).parent / name / "stages" / dst.name
                if is_done(src):
                    _take(src, dst)
                    taken.append((name, dst))
                    break
    return taken
