"""`d2m evaluate RUN_DIR`: score a run's composition model on its dataset's test music."""

from __future__ import annotations

from pathlib import Path

from common.atomic import read_json, write_json
from common.errors import D2MError
from datamodules import ensure_dataset
from experiments.rundir import load_run


def evaluate_run_dir(path: Path) -> Path:
    """Write the generated-dance metrics and the real-data reference row into RUN_DIR/metrics.json."""
    from experiments.stages import score_composition

    run = load_run(path)
    cfg = run.config
    root = run.stages.get("data", {}).get("root") or (str(ensure_dataset(cfg.data)) if cfg.data.root else None)
    if not root or not Path(root).is_dir():
        raise D2MError(f"run {path} names no dataset to evaluate on (data.root={cfg.data.root!r})")
    generated, reference = score_composition(cfg, run.checkpoint("composition"), root)
    metrics = read_json(path / "metrics.json", {})
    metrics.update({f"evaluation/{k}": float(v) for k, v in generated.items()})
    metrics.update({f"reference/{k}": float(v) for k, v in reference.items()})
    write_json(path / "metrics.json", metrics)
    done = read_json(path / "done.json")
    if done is not None:  # only a finished run says it was evaluated
        write_json(path / "done.json", {**done, "evaluated": True})
    return path / "metrics.json"
