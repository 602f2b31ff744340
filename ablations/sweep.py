"""Export a matrix as a W&B sweep, for running its cells on many machines with `wandb agent`.

The matrix stays the source of truth: each sweep trial runs one (cell, seed) of it through
`d2m ablate MATRIX --cell C --seed S`, so a local rerun of the matrix finds those runs done.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from ablations.matrix import Matrix
from common.atomic import write_text


def sweep_spec(matrix: Matrix) -> dict:
    return {
        "name": matrix.name,
        "method": "grid",
        "program": "d2m",
        "command": ["${env}", "d2m", "ablate", str(matrix.path), "${args}"],
        "parameters": {
            "cell": {"values": list(matrix.cells)},
            "seed": {"values": list(matrix.seeds)},
            "device": {"values": list(matrix.devices)},
        },
    }


def write_sweep(matrix: Matrix, out: Path) -> Path:
    """Write the sweep file; start it with `wandb sweep FILE`, then `wandb agent ID` on each machine."""
    return write_text(out, yaml.safe_dump(sweep_spec(matrix), sort_keys=False))
