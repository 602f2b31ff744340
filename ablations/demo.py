"""`make demo`: the whole pipeline on the built-in data, then a map of where every result is."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ablations.runner import run_matrix
from datamodules.atomic import read_json
from datamodules.errors import D2MError


def main(jobs: int = 2) -> int:
    t0 = time.time()
    try:
        out = run_matrix("demo", jobs=jobs)
    except D2MError as err:
        print(f"demo: error: {err}", file=sys.stderr)
        return 2
    entries = read_json(out / "cells.json", [])
    print(f"\nd2m-lab demo finished in {(time.time() - t0) / 60:.1f} min. Where everything is:")
    first = entries[0] if entries else None
    if first:
        stages = read_json(Path(first["run_dir"]) / "stages.json", {})
        print(f"  dataset (synthetic)        {stages.get('data', {}).get('root')}")
    for e in entries:
        print(f"  run {e['cell']:<22} {e['run_dir']}  [{e['status']}]")
    for name in ("ablation.md", "ablation.csv", "ablation.tex", "ablation.png", "timing.md", "timing.png"):
        if (out / name).exists():
            print(f"  table/plot                 {out / name}")
    for video in sorted((out / "dances").glob("*.mp4")):
        print(f"  rendered dance             {video}")
    print("  W&B offline runs           runs/demo/**/wandb/ (upload with: make wandb-sync)")
    if (out / "ablation.md").exists():
        print("\n" + (out / "ablation.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
