"""Run a matrix: every cell in its own process, several at once, failures isolated, resumable.

Each cell is `python -m d2m run BASE overrides...` in a child process, so a crash or an exhausted
memory in one cell cannot take the others down, and parallel cells do not share a torch thread pool.
Cells whose run directory went as far as the matrix asks are skipped (one that stopped earlier is
finished). Stages that several pending cells share are trained first, once, with the cores that
cells waiting on them would leave idle (`shared_stages`); cells that still meet on a stage wait on its
file lock and find it trained. The state of
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
from experiments.rundir import is_done, run_dir, run_progress, run_reached, stage_dir
from experiments.stage_graph import stage_key, stages_until

RESULTS_DIR = Path("results")


# Stages `d2m train` can train on their own (data is built by whichever stage needs it first).
TRAINABLE = ("style", "decomposition", "composition")


def shared_stages(runs: list[CellRun], until: str) -> list[tuple[CellRun, str]]:
    """(run, stage) pairs: each untrained stage that two or more pending runs share, deepest first.

    Training it once, before the cells start and with the cores the waiting cells would leave idle,
    is what a matrix of cells that differ only downstream (the demo's two cells share their style
    extractor and VAE; the ablations' cells share one VAE per seed) spends its first minutes on.
    Only the deepest shared stage of each group is listed: training it trains what it needs.
    """
    covered: set[tuple[str, str]] = set()  # (stage, key) already trained by a listed pair
    plan: list[tuple[CellRun, str]] = []
    for stage in reversed([s for s in stages_until(until) if s in TRAINABLE and s != until]):
        groups: dict[str, list[CellRun]] = {}
        for r in runs:
            groups.setdefault(stage_key(r.cfg, stage), []).append(r)
        for key, members in groups.items():
            if len(members) < 2 or (stage, key) in covered or is_done(stage_dir(members[0].cfg, stage)):
                continue
            plan.append((members[0], stage))
            covered |= {(s, stage_key(members[0].cfg, s)) for s in stages_until(stage)}
    return plan


def _train_shared(run: CellRun, stages_of: dict[str, list[str]], **kw: Any) -> dict[str, Any]:
    """The shared stages `stages_of[run.label]` of one run, in turn; the first failure ends it.

    A module-level function, so that submitit can pickle it.
    """
    result: dict[str, Any] = {}
    for stage in stages_of[run.label]:
        result = _run_cell(run, until=stage, shared=True, **kw)
        if result["status"] == "failed":
            break
    return result


def _run_cell(run: CellRun, base: Path, until: str, log_dir: Path, threads: int,
              board: CellBoard | None = None, shared: bool = False) -> dict[str, Any]:
    """One cell as far as `until`; `shared`: only a stage other cells share (its own log, no run status)."""
    folder = run_dir(run.cfg)
    entry = {"cell": run.cell, "seed": run.seed, "device": run.device, "run_dir": str(folder)}
    if run_reached(folder, until):  # a run that stopped earlier (`d2m train style`) is finished here
        return {**entry, "status": "done", "note": "already finished"}
    if run_progress(folder):
        entry["note"] = f"resumed after {run_progress(folder)[-1]}"
    log = log_dir / (f"{run.label}.shared-{until}.log" if shared else f"{run.label}.log")
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

    Beat-warped and seam-blended as the run's evaluation did (`evaluation.beat_warp`,
    `evaluation.seam_blend_frames`), so the video is what was scored.
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
        scored = run.config.get("evaluation", {})  # render what the evaluation scored
        written += generate_from_run(Path(e["run_dir"]), audio, out / f"{e['cell']}.mp4", samples=1,
                                     seed=int(e["seed"]), beat_warp=bool(scored.get("beat_warp", False)),
                                     seam_blend=int(scored.get("seam_blend_frames", 0)), progress=False)
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
    if matrix.reuse_stages_from:
        from ablations.reuse import reuse_stages

        taken = reuse_stages(todo, matrix.until, matrix.reuse_stages_from)
        if taken:
            sources = sorted({name for name, _ in taken})
            print(f"matrix {matrix.name}: took {len(taken)} finished stage folder(s) from {', '.join(sources)}",
                  file=sys.stderr)
    jobs = max(1, min(jobs, len(todo) or 1))
    if jobs > 1:  # cells side by side would compile librosa's beat tracker at once
        from datamodules.audio import warm_beat_tracker

        warm_beat_tracker()
    threads = launch.threads(jobs)
    base = resolve_path(matrix.base).resolve()
    print(f"matrix {matrix.name}: {len(todo)} runs ({len(entries)} skipped), {jobs} at a time, "
          f"{launch.describe()}; each run's log: {out / 'logs'}/", file=sys.stderr)
    with CellBoard() as board:
        # The live board watches the cells' logs from this process; a job elsewhere reports when it ends.
        watch = board if launch.name == "local" else None
        first = shared_stages(todo, matrix.until) if jobs > 1 else []  # one at a time, nobody waits
        if first:
            board.print(f"  training {len(first)} shared stage(s) first: "
                        + ", ".join(f"{stage} (as in {r.label})" for r, stage in first))
            # one at a time with every core: a small model's step scales with threads better than
            # two stages side by side, one of them (the style extractor) done in seconds
            stages_of: dict[str, list[str]] = {}
            for r, stage in first:
                stages_of.setdefault(r.label, []).append(stage)
            owners = list({r.label: r for r, _ in first}.values())
            share_fn = functools.partial(_train_shared, stages_of=stages_of, base=base,
                                         log_dir=out / "logs", threads=launch.threads(1), board=watch)
            for result in launch.map(share_fn, owners, 1):
                if result["status"] == "failed":  # the cells that need it fail and report it below
                    board.print(f"  shared stage of {result['cell']} seed {result['seed']} failed "
                                f"({result.get('error')})")
        cell_fn = functools.partial(_run_cell, base=base, until=matrix.until, log_dir=out / "logs",
                                    threads=threads, board=watch)
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
