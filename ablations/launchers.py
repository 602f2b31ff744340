"""Where a matrix's runs execute: threads on this machine, or jobs of a scheduler through submitit.

Both launchers call the same function for every (cell, seed, device): the runner's `_run_cell`, which
starts `python -m d2m run ...` and reports how it ended. So the run folders, the stage locks shared
by cells, the resume from finished stages and the tables are the same whichever launcher ran them;
only where the child process lives changes. With submitit that is a SLURM job on a cluster (its
runs folder must be a shared file system with working `flock`, as the stage locks rely on it), or a
process of submitit's local executor on a machine without a scheduler.

submitit is imported only when asked for, so the local runner needs nothing beyond the project.
Cluster settings come from the environment, not from the matrix file, since they belong to a site:
`D2M_SUBMITIT_CLUSTER` (slurm | local | debug; default: slurm where `sbatch` exists, else local)
and `D2M_SUBMITIT` (comma-separated key=value executor parameters, e.g.
`slurm_partition=gpu,timeout_min=240,cpus_per_task=8,mem_gb=32`).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ablations.matrix import CellRun
from common.errors import D2MError
from experiments.rundir import run_dir

__all__ = ["LAUNCHERS", "LocalLauncher", "SubmititLauncher", "make_launcher", "parse_params"]

LAUNCHERS = ("local", "submitit")
CLUSTERS = ("slurm", "local", "debug")
# A job of the local executor is killed at its timeout; a matrix cell may train for hours.
LOCAL_TIMEOUT_MIN = 7 * 24 * 60
SLURM_DEFAULTS: dict[str, Any] = {"timeout_min": 240, "cpus_per_task": 8, "mem_gb": 32, "nodes": 1,
                                  "tasks_per_node": 1}

CellFn = Callable[[CellRun], dict[str, Any]]


def _cuda_here() -> bool:
    import torch

    return torch.cuda.is_available()


class LocalLauncher:
    """`jobs` cells at a time in threads of this process, each thread waiting on its own child process."""

    name = "local"

    def cuda_available(self) -> bool:
        return _cuda_here()

    def threads(self, jobs: int) -> int:
        return max(1, (os.cpu_count() or 1) // jobs)

    def describe(self) -> str:
        return "local processes"

    def map(self, fn: CellFn, runs: Iterable[CellRun], jobs: int) -> Iterator[dict[str, Any]]:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            yield from pool.map(fn, runs)


def parse_params(text: str) -> dict[str, Any]:
    """`key=value,key=value` into executor parameters; integers and floats become numbers."""
    params: dict[str, Any] = {}
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise D2MError(f"D2M_SUBMITIT: '{item}' is not key=value (e.g. slurm_partition=gpu,timeout_min=240)")
        params[key.strip()] = _number(value.strip())
    return params


def _number(value: str) -> Any:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


class SubmititLauncher:
    """Each (cell, seed, device) as one submitit job; results come back in submission order.

    On SLURM every pending run is submitted at once (the scheduler decides what runs when) and a
    CUDA cell asks for one GPU, so CUDA cells are not skipped on a login node without one. With the
    local or debug executor at most `jobs` run at a time, as with the local launcher. Runs that already
    went as far as the matrix asks never get here: the runner answers them from their folders.
    """

    name = "submitit"

    def __init__(self, folder: Path, cluster: str | None = None, params: dict[str, Any] | None = None):
        try:
            import submitit
        except ImportError:
            raise D2MError("--launcher submitit needs the submitit package: pip install submitit") from None
        cluster = cluster or os.environ.get("D2M_SUBMITIT_CLUSTER") or None
        if cluster is not None and cluster not in CLUSTERS:
            raise D2MError(f"D2M_SUBMITIT_CLUSTER '{cluster}' is not one of {', '.join(CLUSTERS)}")
        if params is None:
            params = parse_params(os.environ.get("D2M_SUBMITIT", ""))
        self.folder = Path(folder)
        self.executor = submitit.AutoExecutor(folder=str(self.folder / "%j"), cluster=cluster)
        self.cluster = self.executor.cluster
        base = dict(SLURM_DEFAULTS) if self.cluster == "slurm" else {"timeout_min": LOCAL_TIMEOUT_MIN}
        self.params = {**base, **params}
        try:
            self.executor.update_parameters(**self.params)
        except (ValueError, TypeError, NameError) as err:  # submitit names an unknown key with NameError
            raise D2MError(f"D2M_SUBMITIT: {str(err).splitlines()[0]}") from None

    def cuda_available(self) -> bool:
        return True if self.cluster == "slurm" else _cuda_here()

    def threads(self, jobs: int) -> int:
        if self.cluster == "slurm":
            return max(1, int(self.params.get("cpus_per_task", 1)))
        return max(1, (os.cpu_count() or 1) // jobs)

    def describe(self) -> str:
        return f"submitit {self.cluster} jobs (logs under {self.folder})"

    def _submit(self, fn: CellFn, run: CellRun):
        if self.cluster == "slurm":
            self.executor.update_parameters(name=f"d2m-{run.label}".replace("/", "-"),
                                            gpus_per_node=1 if run.device == "cuda" else 0)
        return self.executor.submit(fn, run)

    def _collect(self, run: CellRun, job) -> dict[str, Any]:
        try:
            return job.result()
        except Exception as err:  # the job itself died: timeout, pre-emption, a node failure, a pickling error
            return {"cell": run.cell, "seed": run.seed, "device": run.device, "run_dir": str(run_dir(run.cfg)),
                    "status": "failed", "log": str(job.paths.stderr), "job_id": str(job.job_id),
                    "error": _job_error(err)[-300:]}

    def map(self, fn: CellFn, runs: Iterable[CellRun], jobs: int) -> Iterator[dict[str, Any]]:
        window = None if self.cluster == "slurm" else max(1, jobs)
        pending: deque = deque()
        for run in runs:  # the runner passes only runs that have not gone as far as the matrix asks
            while window is not None and sum(j is not None for _, j in pending) >= window:
                yield self._next(fn, pending)
            pending.append((run, self._submit(fn, run)))
        while pending:
            yield self._next(fn, pending)

    def _next(self, fn: CellFn, pending: deque) -> dict[str, Any]:
        run, job = pending.popleft()
        if job is None:
            return fn(run)
        result = self._collect(run, job)
        return {**result, "job_id": str(job.job_id)}


def _job_error(err: Exception) -> str:
    """The line that says why: submitit wraps the job's traceback between dashed rules, then log paths."""
    parts = [p for p in str(err).split("\n-") if p.strip()]
    body = parts[1] if len(parts) > 2 else str(err)
    lines = [ln.strip() for ln in body.splitlines() if ln.strip() and not set(ln.strip()) <= {"-"}]
    return lines[-1] if lines else type(err).__name__


def make_launcher(name: str, out: Path) -> LocalLauncher | SubmititLauncher:
    """The launcher called `name`; submitit keeps its job files under OUT/submitit/<job id>/."""
    if name == "local":
        return LocalLauncher()
    if name == "submitit":
        return SubmititLauncher(Path(out) / "submitit")
    raise D2MError(f"unknown launcher '{name}'; choices: {', '.join(LAUNCHERS)}")
