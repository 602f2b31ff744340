"""`d2m table PATH`: every table and plot of a matrix, rebuilt from its run directories alone.

PATH is a matrix file, a results folder (`results/<name>/`, which keeps the list of its runs in
table.json) or a runs group (`runs/<group>/`, whose finished run directories are found by their
done.json). Which runs count, and whether each finished, comes from the run directories (done.json,
config.yaml); the numbers from their metrics.json and timings.json. Nothing here reads W&B or the
runner's state, and `d2m ablate` ends by calling the same `rebuild_tables`, so the tables after a
matrix and after `d2m table` are the same bytes.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from ablations.tables import build_tables, metrics_for
from common.atomic import read_json, write_json
from common.errors import D2MError
from experiments.rundir import run_progress, run_reached
from experiments.stage_graph import STAGES

SPEC_FILE = "table.json"


@dataclass
class TableSpec:
    """What a table is made of: its title, baseline cell, file name, last stage, and its runs."""

    name: str
    baseline: str
    table: str = "ablation"
    until: str = "evaluation"
    runs: list[dict[str, Any]] = field(default_factory=list)  # {"cell", "seed", "device", "run_dir"}


def spec_from_matrix(matrix: Any, runs: list[Any]) -> TableSpec:
    """The runs a matrix expands to (ablations.matrix.expand), each with its deterministic run directory."""
    from experiments.rundir import run_dir

    return TableSpec(name=matrix.name, baseline=matrix.baseline, table=matrix.table, until=matrix.until,
                     runs=[{"cell": r.cell, "seed": r.seed, "device": r.device, "run_dir": str(run_dir(r.cfg))}
                           for r in runs])


def spec_from_group(group: Path, baseline: str | None = None, table: str | None = None) -> TableSpec:
    """Every finished run directory of a runs group; for a (cell, seed, device) run twice, the newest."""
    found: dict[tuple[str, int, str], tuple[float, Path]] = {}
    for done in sorted(group.glob("*/done.json")):
        folder = done.parent
        if not (folder / "config.yaml").is_file() or not run_progress(folder):
            continue
        cfg = OmegaConf.load(folder / "config.yaml")
        ident = (str(cfg.name), int(cfg.seed), str(cfg.trainer.accelerator))
        stamp = done.stat().st_mtime
        if ident in found:
            print(f"d2m: {group}: {ident[0]} seed {ident[1]} {ident[2]} has two run directories; using the newer",
                  file=sys.stderr)
            if found[ident][0] > stamp:
                continue
        found[ident] = (stamp, folder)
    if not found:
        raise D2MError(f"no finished run directory (with done.json and config.yaml) under {group}")
    cells = sorted({c for c, _, _ in found})
    if baseline is None:
        baseline = "full" if "full" in cells else cells[0]
    if baseline not in cells:
        raise D2MError(f"baseline '{baseline}' is not a cell of {group} (cells: {', '.join(cells)})")
    order = [baseline] + [c for c in cells if c != baseline]
    runs = [{"cell": c, "seed": s, "device": d, "run_dir": str(path)}
            for (c, s, d), (_, path) in sorted(found.items(), key=lambda kv: (order.index(kv[0][0]), kv[0][1:]))]
    furthest = max((run_progress(r["run_dir"])[-1] for r in runs), key=STAGES.index)
    until = "evaluation" if furthest == "evaluation" else furthest
    return TableSpec(name=group.name, baseline=baseline, table=table or ("comparison" if until == "style" else
                                                                         "ablation"), until=until, runs=runs)


def load_spec(path: str | Path, baseline: str | None = None, table: str | None = None) -> tuple[TableSpec, Path]:
    """The spec and output folder of PATH: a results folder, a runs group or a matrix file."""
    p = Path(path)
    if p.is_dir() and (p / SPEC_FILE).is_file():
        raw = read_json(p / SPEC_FILE)
        spec = TableSpec(**{k: raw[k] for k in ("name", "baseline", "table", "until", "runs") if k in raw})
        if baseline:
            spec.baseline = baseline
        return spec, p
    if p.is_dir() and any(p.glob("*/done.json")):
        from ablations.runner import RESULTS_DIR

        spec = spec_from_group(p, baseline, table)
        return spec, RESULTS_DIR / spec.name
    if p.is_dir():
        raise D2MError(f"{p} is neither a results folder (no {SPEC_FILE}) nor a runs group (no */done.json)")
    from ablations.matrix import expand, load_matrix
    from ablations.runner import RESULTS_DIR

    matrix = load_matrix(p)
    spec = spec_from_matrix(matrix, expand(matrix))
    if baseline:
        spec.baseline = baseline
    return spec, RESULTS_DIR / spec.name


def entries_of(spec: TableSpec) -> list[dict[str, Any]]:
    """Each run of the spec with the status its run directory gives: done (went as far as `until`) or not."""
    return [{**r, "status": "done" if run_reached(r["run_dir"], spec.until) else "unfinished"} for r in spec.runs]


def rebuild_tables(spec: TableSpec, out: Path) -> dict[str, Path]:
    """Write every table and plot of the spec into `out` (and the spec itself, as table.json)."""
    entries = entries_of(spec)
    if not any(e["status"] == "done" for e in entries):
        raise D2MError(f"none of the {len(entries)} runs of '{spec.name}' has finished {spec.until}; "
                       "nothing to tabulate")
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / SPEC_FILE, asdict(spec))
    return build_tables(out, entries, baseline=spec.baseline, title=spec.name, table_name=spec.table,
                        metrics=metrics_for(spec.until, entries))
