"""Matrix files: a base config, cells of overrides, seeds and devices, expanded into runs.

Every cell's config is built and validated when the matrix is read, so a typo in any cell stops the
matrix before the first run starts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from common.errors import D2MError
from experiments.config import load_config, resolve_path

MATRIX_KEYS = ("name", "base", "seeds", "devices", "overrides", "cells", "baseline", "until", "table", "render",
               "reuse_stages_from")
UNTIL = ("style", "decomposition", "composition", "evaluation")
MATRIX_DIR = Path(__file__).parent / "matrices"


@dataclass
class Matrix:
    name: str
    base: str
    seeds: list[int]
    devices: list[str]
    overrides: dict[str, Any]
    cells: dict[str, dict[str, Any]]
    baseline: str
    path: Path
    until: str = "evaluation"  # the last stage each cell runs
    table: str = "ablation"  # file name of the main table under results/<name>/
    render: bool = False  # render one generated dance per cell (first seed) into results/<name>/dances/
    # other matrices whose finished stage folders this one takes instead of retraining (ablations/reuse.py)
    reuse_stages_from: list[str] = field(default_factory=list)


@dataclass
class CellRun:
    """One (cell, seed, device) of a matrix, with its resolved config."""

    cell: str
    seed: int
    device: str
    overrides: list[str]
    cfg: DictConfig = field(repr=False)

    @property
    def label(self) -> str:
        return f"{self.cell}-s{self.seed}-{self.device}"


def as_dotlist(mapping: dict[str, Any]) -> list[str]:
    """{key: value} overrides as `key=value` strings (JSON values are valid YAML for OmegaConf)."""
    return [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in mapping.items()]


def resolve_matrix_path(path: str | Path) -> Path:
    p = Path(path)
    if p.is_file():
        return p
    for candidate in (MATRIX_DIR / p, MATRIX_DIR / f"{p}.yaml"):
        if candidate.is_file():
            return candidate
    known = ", ".join(sorted(c.stem for c in MATRIX_DIR.glob("*.yaml")))
    raise D2MError(f"matrix file not found: {path} (built-in matrices: {known})")


def load_matrix(path: str | Path) -> Matrix:
    p = resolve_matrix_path(path)
    try:
        raw = OmegaConf.to_container(OmegaConf.load(p), resolve=True)
    except Exception as err:
        raise D2MError(f"cannot read matrix {p}: {str(err).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise D2MError(f"matrix {p} must be a mapping")
    unknown = sorted(set(raw) - set(MATRIX_KEYS))
    if unknown:
        raise D2MError(f"unknown key '{unknown[0]}' in matrix {p}; allowed: {', '.join(MATRIX_KEYS)}")
    for required in ("name", "base", "cells"):
        if not raw.get(required):
            raise D2MError(f"matrix {p} needs '{required}'")
    cells = raw["cells"]
    if not isinstance(cells, dict):
        raise D2MError(f"matrix {p}: 'cells' must map cell names to overrides")
    cells = {str(k): dict(v or {}) for k, v in cells.items()}
    devices = [str(d) for d in raw.get("devices") or ["cpu"]]
    for d in devices:
        if d not in ("cpu", "cuda"):
            raise D2MError(f"matrix {p}: device '{d}' is not one of cpu, cuda")
    baseline = str(raw.get("baseline") or next(iter(cells)))
    if baseline not in cells:
        raise D2MError(f"matrix {p}: baseline '{baseline}' is not a cell ({', '.join(cells)})")
    until = str(raw.get("until") or "evaluation")
    if until not in UNTIL:
        raise D2MError(f"matrix {p}: until '{until}' is not one of {', '.join(UNTIL)}")
    reuse = raw.get("reuse_stages_from") or []
    if not isinstance(reuse, list) or not all(isinstance(n, str) and n and "/" not in n for n in reuse):
        raise D2MError(f"matrix {p}: 'reuse_stages_from' must be a list of matrix names, got {reuse!r}")
    return Matrix(name=str(raw["name"]), base=str(raw["base"]), seeds=[int(s) for s in raw.get("seeds") or [0]],
                  devices=devices, overrides=dict(raw.get("overrides") or {}), cells=cells, baseline=baseline,
                  path=p, until=until, table=str(raw.get("table") or "ablation"),
                  render=bool(raw.get("render", False)), reuse_stages_from=list(reuse))


def expand(matrix: Matrix, extra: list[str] | tuple[str, ...] = ()) -> list[CellRun]:
    """Cells x seeds x devices, each with its validated config (group = matrix name, name = cell)."""
    base = resolve_path(matrix.base)
    runs = []
    for cell, cell_overrides in matrix.cells.items():
        for seed in matrix.seeds:
            for device in matrix.devices:
                overrides = [
                    *as_dotlist(matrix.overrides),
                    *as_dotlist(cell_overrides),
                    *extra,
                    f"seed={seed}",
                    f"trainer.accelerator={device}",
                    f"group={matrix.name}",
                    f"name={cell}",
                ]
                try:
                    cfg = load_config(base, overrides)
                except D2MError as err:
                    raise D2MError(f"matrix {matrix.path}, cell '{cell}': {err}") from None
                runs.append(CellRun(cell=cell, seed=seed, device=device, overrides=overrides, cfg=cfg))
    return runs
