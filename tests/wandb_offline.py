"""Read back what an offline W&B run wrote, without W&B's servers or an account.

An offline run keeps everything in one `run-<id>.wandb` file: W&B's protobuf records framed as a
LevelDB-style log (32 KiB blocks; each chunk has a 7-byte header: CRC, length, type). Reading it
lets tests check the group, tags, config and summary that `wandb sync` would upload.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

_BLOCK = 32768
_HEADER = 7
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def _chunks(data: bytes):
    if data[:4] != b":W&B":
        raise ValueError("not a W&B run file (bad magic)")
    pos, pending = _HEADER, b""
    while pos + _HEADER <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _HEADER:  # the rest of a block too short for a header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + _HEADER])
        if length == 0 and kind == 0:
            pos += left
            continue
        body = data[pos + _HEADER : pos + _HEADER + length]
        pos += _HEADER + length
        if kind == _FULL:
            yield body
        elif kind == _FIRST:
            pending = body
        elif kind == _MIDDLE:
            pending += body
        elif kind == _LAST:
            yield pending + body
            pending = b""


def find_offline_runs(root: str | Path) -> list[Path]:
    return sorted(Path(root).rglob("offline-run-*/run-*.wandb"))


def read_offline_run(path: str | Path) -> dict[str, Any]:
    """Project, name, group, job type, tags, config and final summary of one offline run file."""
    from wandb.proto import wandb_internal_pb2 as pb

    out: dict[str, Any] = {"config": {}, "summary": {}, "tags": []}
    for raw in _chunks(Path(path).read_bytes()):
        rec = pb.Record()
        rec.ParseFromString(raw)
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            run = rec.run
            out.update(project=run.project, name=run.display_name, group=run.run_group,
                       job_type=run.job_type, tags=list(run.tags))
            for item in run.config.update:
                out["config"][item.key] = json.loads(item.value_json)
        elif kind == "config":
            for item in rec.config.update:
                out["config"][item.key] = json.loads(item.value_json)
        elif kind == "summary":
            for item in rec.summary.update:
                key = item.key or "/".join(item.nested_key)
                out["summary"][key] = json.loads(item.value_json)
    out["config"].pop("_wandb", None)
    return out


def read_when_written(path: str | Path, summary_keys=(), timeout: float = 30.0) -> dict[str, Any]:
    """`read_offline_run` once the run record and the given summary keys are in the file.

    W&B's service process may still be writing the file after `finish()` returns, under load.
    """
    import time

    deadline = time.time() + timeout
    while True:
        run = read_offline_run(path)
        if ("project" in run and all(k in run["summary"] for k in summary_keys)) or time.time() > deadline:
            return run
        time.sleep(0.5)
