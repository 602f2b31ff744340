"""Run a matrix: every cell in its own process, several at once, failures isolated, resumable.

Each cell is `python -m d2m run BASE overrides...` in a child process, so a crash or an exhausted
memory in one cell cannot take the others down, and parallel cells do not share a torch thread pool.
Cells whose run directory went as far as the matrix asks are skipped (one that stopped earlier is
finished); cells sharing a stage wait on that stage's file lock and find it trained. The state of
every cell is kept in results/<name>/cells.json; the tables are then rebuilt from the run
directories alone (`rebuild_tables`, the same function as `d2m table`), and only after that does
the W&B summary run upload them. Where the child processes live (threads here, or submitit jobs on a
SLURM cluster) is the launcher's business (`ablations/launchers.py`).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ablations.launchers import make_launcher
from ablations.matrix import CellRun, expand, load_matrix
from ablations.progress import CellBoard, child_env
from ablations.rebuild import rebuild_tables, spec_from_matrix
from ablations.sweep import write_sweep
from common.atomic import write_json
from common.errors import D2MError
from experiments.config import resolve_path
from experiments.rundir import run_dir, run_progress, run_reached

RESULTS_DIR = Path("results")


def _run_cell(run: CellRun, base: Path, until: str, log_dir: Path, threads: int,
              board: CellBoard | None = None) -> dict[str, Any]:
    folder = run_dir(run.cfg)
    entry = {"cell": run.cell, "seed": run.seed, "device": run.device, "run_dir": str(folder)}
    if run_reached(folder, until):  # a run that stopped earlier (`d2m train style`) is finished here
        return {**entry, "status": "done", "note": "already finished"}
    if run_progress(folder):
        entry["note"] = f"resumed after {run_progress(folder)[-1]}"
    log = log_dir / f"{run.label}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **child_env(), "OMP_NUM_THREADS": str(threads),
           "WANDB_MODE": os.environ.get("WANDB_MODE", "offline")}
    command = ["run"] if until == "evaluation" else ["train", until]
    cmd = [sys.executable, "-m", "d2m", *command, str(base), *run.overrides, f"trainer.threads={threads}"]
    t0 = time.perf_counter()
    if board is not None:
        board.watch(run.label, log)
    try:
        with open(log, "w") as out:
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, check=False)
    finally:
        if board is not None:
            board.unwatch(run.label)
    seconds = round(time.perf_counter() - t0, 1)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or [""]
        return {**entry, "status": "failed", "seconds": seconds, "log": str(log), "error": tail[0][-300:]}
    return {**entry, "status": "done", "seconds": seconds, "log": str(log)}


def render_dances(entries: list[dict[str, Any]], out: Path) -> list[Path]:
    """One rendered dance per cell (its first finished run), to the first test clip's music.

    Beat-warped when the run's evaluation warps (`evaluation.beat_warp`), so the video is what was scored.
    """
    from experiments.generate import generate_from_run
    from experiments.rundir import load_run

    written: list[Path] = []
    done_cells: set[str] = set()
    for e in entries:
        if e["status"] != "done" or e["cell"] in done_cells:
            continue
        run = load_run(e["run_dir"])
        audio = first_test_audio(Path(run.stages["data"]["root"]))
        warp = bool(run.config.get("evaluation", {}).get("beat_warp", False))  # what the evaluation scored
        written += generate_from_run(Path(e["run_dir"]), audio, out / f"{e['cell']}.mp4", samples=1,
                                     seed=int(e["seed"]), beat_warp=warp, progress=False)
        done_cells.add(e["cell"])
    return written


def first_test_audio(root: Path) -> Path:
    import pandas as pd

    clips = pd.read_csv(root / "clips.csv")
    test = clips[clips["split"] == "test"]
    clip_id = (test if not test.empty else clips)["clip_id"].iloc[0]
    return root / "audio" / f"{clip_id}.wav"


def run_matrix(
    path: str | Path,
    jobs: int = 1,
    export_sweep: str | None = None,
    only_cell: str | None = None,
    only_seed: int | None = None,
    only_device: str | None = None,
    results_dir: Path = RESULTS_DIR,
    extra_overrides: list[str] | tuple[str, ...] = (),
    launcher: str = "local",
) -> Path:
    """Run every pending cell of a matrix and write its tables; returns results/<name>/."""
    matrix = load_matrix(path)
    every_run = expand(matrix, extra_overrides)
    runs = every_run
    if export_sweep:
        return write_sweep(matrix, Path(export_sweep))
    if only_cell is not None and only_cell not in matrix.cells:
        raise D2MError(f"no cell '{only_cell}' in matrix {matrix.path} (cells: {', '.join(matrix.cells)})")
    runs = [
        r for r in runs
        if (only_cell is None or r.cell == only_cell)
        and (only_seed is None or r.seed == only_seed)
        and (only_device is None or r.device == only_device)
    ]
    out = results_dir / matrix.name
    out.mkdir(parents=True, exist_ok=True)
    launch = make_launcher(launcher, out)
    entries: list[dict[str, Any]] = []
    todo: list[CellRun] = []
    for r in runs:
        if r.device == "cuda" and not launch.cuda_available():
            entries.append({"cell": r.cell, "seed": r.seed, "device": r.device, "run_dir": str(run_dir(r.cfg)),
                            "status": "skipped", "note": "no CUDA device present"})
        elif run_reached(run_dir(r.cfg), matrix.until):  # answered here, never submitted again
            entries.append({"cell": r.cell, "seed": r.seed, "device": r.device, "run_dir": str(run_dir(r.cfg)),
                            "status": "done", "note": "already finished"})
        else:
            todo.append(r)
    jobs = max(1, min(jobs, len(todo) or 1))
    threads = launch.threads(jobs)
    base = resolve_path(matrix.base).resolve()
    print(f"matrix {matrix.name}: {len(todo)} runs ({len(entries)} skipped), {jobs} at a time, "
          f"{launch.describe()}; each run's log: {out / 'logs'}/", file=sys.stderr)
    with CellBoard() as board:
        # The live board watches the cells' logs from this process; a job elsewhere reports when it ends.
        cell_fn = functools.partial(_run_cell, base=base, until=matrix.until, log_dir=out / "logs",
                                    threads=threads, board=board if launch.name == "local" else None)
        for result in launch.map(cell_fn, todo, jobs):
            entries.append(result)
            write_json(out / "cells.json", entries)
            board.print(f"  {result['cell']} seed {result['seed']} {result['device']}: {result['status']}"
                        + (f" in {result['seconds']:.0f} s" if "seconds" in result else "")
                        + (f" ({result.get('error')})" if result["status"] == "failed" else ""))
    write_json(out / "cells.json", entries)
    if any(e["status"] == "done" for e in entries):
        rebuild_tables(spec_from_matrix(matrix, every_run), out)  # every finished run, not only this call's
        from ablations.wandb_summary import log_summary_run

        log_summary_run(runs[0].cfg, matrix.name, matrix.table, out)
    if matrix.render:
        render_dances(entries, out / "dances")
    failed = [e for e in entries if e["status"] == "failed"]
    if failed:
        names = ", ".join(f"{e['cell']}/s{e['seed']}/{e['device']}" for e in failed)
        raise D2MError(f"{len(failed)} of {len(entries)} runs failed ({names}); logs under {out / 'logs'}; "
                       f"tables of the others are in {out}")
    return out
