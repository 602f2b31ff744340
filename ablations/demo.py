"""`make demo`: the whole pipeline on the built-in data, then a map of where every result is.

It ends with the learning targets of the full model, number by number (`ablations/targets.py`,
also written to results/demo/targets.md and targets.json).

While it runs, one live line per cell shows its stage, step, rate and time left (plain lines every
30 s when the output is not a terminal); `python -m ablations.demo --quiet` shows none.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from ablations.runner import run_matrix
from ablations.targets import check_targets, write_targets
from common.atomic import read_json
from common.errors import D2MError
from experiments.progress import ENV_MODE
from experiments.quiet import install


def main(jobs: int = 2) -> int:
    install()
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
    print(f"  logs of the runs           {out / 'logs'}/")
    for name in ("ablation.md", "ablation.csv", "ablation.tex", "ablation.png", "timing.md", "timing.png"):
        if (out / name).exists():
            print(f"  table/plot                 {out / name}")
    for video in sorted((out / "dances").glob("*.mp4")):
        print(f"  rendered dance             {video}")
    print("  W&B offline runs           runs/demo/**/wandb/ (upload with: make wandb-sync)")
    if (out / "ablation.md").exists():
        print("\n" + (out / "ablation.md").read_text())
    full = next((e for e in entries if e["cell"] == "full" and e["status"] == "done"), None)
    if full:
        rows = check_targets(read_json(Path(full["run_dir"]) / "metrics.json", {}), minutes=(time.time() - t0) / 60)
        print("\n" + write_targets(rows, out, "Learning targets of the full model (docs/training.md)"))
    return 0


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ablations.demo", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2, help="cells run at once")
    parser.add_argument("--quiet", action="store_true", help="no live progress")
    args = parser.parse_args(argv)
    if args.quiet:
        os.environ[ENV_MODE] = "off"
    return main(jobs=args.jobs)


if __name__ == "__main__":
    sys.exit(cli())
