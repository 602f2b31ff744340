"""Atomic writes: a result file is either absent or complete, never half-written.

Every writer in d2m-lab goes through these: write to a temporary file in the same folder, flush,
then rename over the target (a rename is atomic on POSIX file systems). A write that fails for a
reason of the file system (full disk, read-only or permission denied) is a `D2MError` naming the
target and the reason, and leaves the target as it was.

Folders are built in a hidden sibling `.<name>.XXXXXXXX` held by a lock file `.<name>.XXXXXXXX.lock`.
A build killed before it could clean up (SIGKILL, power loss) leaves its sibling behind with nobody
holding the lock; the next build of the same target sweeps such leftovers, and never touches one
whose builder is still alive.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from common.errors import D2MError

LOCK_SUFFIX = ".lock"


class WriteError(D2MError):
    """A file-system failure while writing `path` (full disk, read-only, permission denied)."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"cannot write {self.path}: {reason}")


def reason_of(err: OSError) -> str:
    """The human reason of an OSError, e.g. 'No space left on device'."""
    code = errno.errorcode.get(err.errno) if err.errno else None
    return err.strerror or code or str(err) or type(err).__name__


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _usual_mode(path: Path, directory: bool) -> None:
    """Temporary files are created private (0600/0700); give the result the usual permissions."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def _make_parent(target: Path) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise WriteError(target, f"{_first_file_above(target)} is a file, not a folder") from None
    except OSError as err:
        raise WriteError(target, reason_of(err)) from None


def _first_file_above(target: Path) -> Path:
    for parent in reversed(target.parents):
        if parent.exists() and not parent.is_dir():
            return parent
    return target.parent


@contextlib.contextmanager
def atomic_path(target: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to `target`; on success rename it over `target`, else delete it."""
    target = Path(target)
    _make_parent(target)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix or target.suffix, dir=target.parent)
    except OSError as err:
        raise WriteError(target, reason_of(err)) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        try:
            yield tmp_path
            if tmp_path.exists():
                _usual_mode(tmp_path, directory=False)
            os.replace(tmp_path, target)
        except OSError as err:
            raise WriteError(target, reason_of(err)) from None
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(target: str | Path, data: bytes) -> Path:
    """Atomically write bytes, flushed to disk before the rename."""
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return Path(target)


def write_text(target: str | Path, text: str) -> Path:
    return write_bytes(target, text.encode("utf-8"))


def write_json(target: str | Path, obj: Any) -> Path:
    return write_text(target, json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n")


def write_with(target: str | Path, writer: Callable[[Path], None]) -> Path:
    """Atomically write `target` with a function that writes to the path it is given."""
    with atomic_path(target) as tmp:
        writer(tmp)
    return Path(target)


def probe_write(folder: str | Path, nbytes: int) -> str | None:
    """Why `nbytes` cannot be written in `folder` (e.g. 'No space left on device'), or None if they can.

    Libraries that write through C code (libsndfile) report a full disk as 'System error.'; writing
    the same amount with plain Python recovers the operating system's reason.
    """
    try:
        with tempfile.TemporaryFile(dir=folder) as f:
            block = b"\0" * min(nbytes, 1 << 20)
            left = nbytes
            while left > 0:
                left -= f.write(block[: min(left, len(block))])
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:
        return reason_of(err)
    return None


def _temp_dir_pattern(name: str) -> re.Pattern[str]:
    return re.compile(re.escape(f".{name}.") + r"[A-Za-z0-9_]{8}")


def sweep_stale(target: str | Path) -> list[Path]:
    """Remove the temporary build folders of `target` whose builder is gone; returns what was removed.

    A folder counts as stale when nobody holds its lock file (or it has none: an older build).
    """
    target = Path(target)
    if not target.parent.is_dir():
        return []
    pattern = _temp_dir_pattern(target.name)
    removed = []
    for entry in sorted(target.parent.iterdir()):
        if entry.name.endswith(LOCK_SUFFIX) and pattern.fullmatch(entry.name[: -len(LOCK_SUFFIX)]):
            _drop_orphan_lock(entry)
            continue
        if not pattern.fullmatch(entry.name) or not entry.is_dir() or entry.is_symlink():
            continue
        lock = entry.with_name(entry.name + LOCK_SUFFIX)
        handle = None
        try:
            if lock.exists():
                handle = open(lock, "a")
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live build
            shutil.rmtree(entry, ignore_errors=True)
            lock.unlink(missing_ok=True)
            removed.append(entry)
        except OSError:
            continue
        finally:
            if handle is not None:
                handle.close()
    return removed


def _drop_orphan_lock(lock: Path) -> None:
    """A build's lock file left without its folder (killed before or after it) and held by nobody."""
    folder = lock.with_name(lock.name[: -len(LOCK_SUFFIX)])
    if folder.exists() or not lock.is_file() or lock.stat().st_size:
        return
    try:
        with open(lock, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if not folder.exists():
                lock.unlink(missing_ok=True)
    except OSError:  # BlockingIOError included: a live build holds it
        pass


def is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


@contextlib.contextmanager
def atomic_dir(target: str | Path, replace: bool = True) -> Iterator[Path]:
    """Build a whole folder in a temporary sibling, then move it into place.

    An existing empty folder is replaced; an existing non-empty one only when `replace` is true, by
    two renames (the old folder aside, the new one in) so that `target` is never half old, half new.
    """
    target = Path(target)
    _make_parent(target)
    sweep_stale(target)
    try:
        fd, lock_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=LOCK_SUFFIX, dir=target.parent)
    except OSError as err:
        raise WriteError(target, reason_of(err)) from None
    lock = Path(lock_name)
    tmp = lock.with_name(lock.name[: -len(LOCK_SUFFIX)])
    handle = os.fdopen(fd, "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            tmp.mkdir(mode=0o700)
        except OSError as err:
            raise WriteError(target, reason_of(err)) from None
        yield tmp
        _usual_mode(tmp, directory=True)
        _move_into_place(tmp, target, replace)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        lock.unlink(missing_ok=True)
        handle.close()


def _move_into_place(tmp: Path, target: Path, replace: bool) -> None:
    if target.exists() and not target.is_dir():
        raise WriteError(target, "it is a file, not a folder")
    old = None
    if target.exists() and not is_empty_dir(target):
        if not replace:
            raise WriteError(target, "the folder is not empty (something was written there during the build)")
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        os.replace(target, old / target.name)
    try:
        os.replace(tmp, target)
    except OSError as err:
        if old is not None:  # put the old folder back
            os.replace(old / target.name, target)
            shutil.rmtree(old, ignore_errors=True)
        raise WriteError(target, reason_of(err)) from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_json(path: str | Path, default: Any = None) -> Any:
    path = Path(path)
    if not path.exists():
        return default
    return json.loads(path.read_text(encoding="utf-8"))


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
