"""The stages of one experiment: data -> style extractor -> decomposition -> composition -> evaluation.

Each stage trains (or builds) into its own folder named by its stage key, writes stage.yaml (what
the key hashes) first, metrics.json and timings.json atomically, and done.json last; a finished
stage is never redone, an interrupted one resumes from its last checkpoint. A file lock per stage
folder lets parallel matrix cells that share a stage wait for one another instead of training it
twice. The order of the stages and what each needs is the graph in experiments/stage_graph.py.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig

from common.atomic import read_json, write_json, write_text
from datamodules import build_datamodule, ensure_dataset
from experiments.config import to_container
from experiments.loggers import finish_loggers, log_summary, make_loggers
from experiments.rundir import is_done, mark_done, run_name, stage_dir
from experiments.stage_graph import stage_key, stage_yaml, stages_until
from experiments.trainer import build_trainer, device_name

__all__ = ["STAGE_FUNCTIONS", "is_rank_zero", "run_stage", "score_composition", "stage_lock", "stages_until"]


def is_rank_zero() -> bool:
    """False in the extra processes that Lightning's DDP launcher starts (they re-run this command)."""
    return all(int(os.environ.get(v, "0")) == 0 for v in ("RANK", "LOCAL_RANK", "NODE_RANK"))


@contextlib.contextmanager
def stage_lock(path: Path, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Exclusive per stage folder; DDP worker processes skip it (rank zero holds it for them).

    `on_wait` is called once when another process holds the lock (a matrix cell training a shared
    stage), so the console can say why this one is idle.
    """
    if not is_rank_zero():
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _floats(metrics: dict[str, Any]) -> dict[str, float]:
    out = {}
    for k, v in metrics.items():
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if not math.isnan(f):
            out[k] = f
    return out


def _report_scalars(report: dict[str, Any], prefix: str = "test/") -> dict[str, float]:
    """Per-class precision and recall of a test report as flat metrics (test/precision/<class>)."""
    out = {}
    for key in ("precision", "recall"):
        for cls, value in (report.get(key) or {}).items():
            out[f"{prefix}{key}/{cls}"] = float(value)
    return out


def _fit_and_test(
    cfg: DictConfig,
    stage: str,
    folder: Path,
    module: pl.LightningModule,
    datamodule: pl.LightningDataModule,
) -> dict[str, Any]:
    """Train with resume from last.ckpt, test the best checkpoint, return the record of the stage."""
    optim = cfg[stage].optim
    loggers = make_loggers(cfg, stage, folder, run_name(cfg))
    try:
        trainer, checkpoint, timer = build_trainer(
            cfg, optim, folder, loggers, getattr(module, "monitor", "val/loss"),
            getattr(module, "monitor_mode", "min"), manual_optimization=not module.automatic_optimization,
            module=module,
        )
        last = folder / "checkpoints" / "last.ckpt"
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(last) if last.is_file() else None)
        best = checkpoint.best_model_path or str(last)
        results = trainer.test(module, datamodule=datamodule, ckpt_path=best, verbose=False)
        report = getattr(module, "test_report", None) or {}
        metrics = {**_floats(results[0] if results else {}), **_report_scalars(report)}
        timings = timer.summary(device_name(cfg))
        timings["train_batches_per_epoch"] = trainer.num_training_batches
        log_summary(loggers, {**metrics, **{f"timing/{k}": v for k, v in timings.items()}})
    finally:
        finish_loggers(loggers)
    if trainer.is_global_zero:
        write_json(folder / "metrics.json", {**metrics, "report": report})
        write_json(folder / "timings.json", timings)
    return {"checkpoint": str(Path(best).resolve()), "metrics": metrics, "timings": timings, "report": report}


def _data(cfg: DictConfig, folder: Path, records: dict) -> dict[str, Any]:
    root = ensure_dataset(cfg.data)
    return {"root": str(Path(root).resolve()), "metrics": {}, "timings": {}}


def _style(cfg: DictConfig, folder: Path, records: dict) -> dict[str, Any]:
    from evaluation.style_report import write_style_report
    from lightning_modules.style_module import StyleExtractorModule

    dm = build_datamodule("style", cfg.data, root=records["data"]["root"], batch_size=cfg.style.optim.batch_size,
                          seed=cfg.seed, window=cfg.style.window)
    dm.setup("fit")
    module = StyleExtractorModule(to_container(cfg.style), feature_dim=dm.feature_dim, class_names=dm.class_names)
    record = _fit_and_test(cfg, "style", folder, module, dm)
    if record["report"]:
        write_style_report(record["report"], folder)
    record["class_names"] = list(dm.class_names)
    return record


def _decomposition(cfg: DictConfig, folder: Path, records: dict) -> dict[str, Any]:
    from lightning_modules.decomposition_module import DecompositionModule

    dm = build_datamodule("units", cfg.data, root=records["data"]["root"],
                          batch_size=cfg.decomposition.optim.batch_size, seed=cfg.seed)
    dm.setup("fit")
    module = DecompositionModule(to_container(cfg.decomposition), pose_dim=28,
                                 pose_mean=dm.pose_mean.tolist(), pose_std=dm.pose_std.tolist())
    return _fit_and_test(cfg, "decomposition", folder, module, dm)


def _composition(cfg: DictConfig, folder: Path, records: dict) -> dict[str, Any]:
    from lightning_modules.composition_module import CompositionModule

    dm = build_datamodule("sequences", cfg.data, root=records["data"]["root"],
                          batch_size=cfg.composition.optim.batch_size, seed=cfg.seed)
    dm.setup("fit")
    module = CompositionModule(
        to_container(cfg.composition), decomposition_config=to_container(cfg.decomposition),
        style_config=to_container(cfg.style), feature_dim=dm.feature_dim,
        class_names=records["style"].get("class_names") or dm.class_names,
        pose_mean=dm.pose_mean.tolist(), pose_std=dm.pose_std.tolist(),
        feature_mean=dm.feature_mean.tolist(), feature_std=dm.feature_std.tolist(),
        feature_spec=dm.feature_spec, sequence_units=cfg.data.sequence_units, unit_frames=cfg.data.unit_frames,
    )
    module.load_upstream(records["style"]["checkpoint"], records["decomposition"]["checkpoint"])
    return _fit_and_test(cfg, "composition", folder, module, dm)


def score_composition(cfg: DictConfig, checkpoint: str | Path, root: str | Path) -> tuple[dict, dict]:
    """Generated-dance metrics of a composition checkpoint, and the real-data reference row."""
    from evaluation.evaluate import evaluate_composition, reference_metrics
    from lightning_modules.composition_module import CompositionModule

    cache = Path(cfg.runs_dir) / "cache"
    module = CompositionModule.load_from_checkpoint(str(checkpoint), map_location="cpu", weights_only=True)
    module.eval()
    generated = evaluate_composition(module.model, root, cfg.evaluation, cache_dir=cache, seed=cfg.seed)
    reference = reference_metrics(root, cfg.evaluation, cache_dir=cache)
    return _floats(generated), _floats(reference)


def _evaluation(cfg: DictConfig, folder: Path, records: dict) -> dict[str, Any]:
    metrics, reference = score_composition(cfg, records["composition"]["checkpoint"], records["data"]["root"])
    write_json(folder / "metrics.json", {**metrics, "reference": reference})
    return {"metrics": metrics, "reference": reference, "timings": {}}


STAGE_FUNCTIONS: dict[str, Callable[[DictConfig, Path, dict], dict[str, Any]]] = {
    "data": _data,
    "style": _style,
    "decomposition": _decomposition,
    "composition": _composition,
    "evaluation": _evaluation,
}


def check_styles_before_training(cfg: DictConfig, records: dict[str, dict]) -> None:
    """`data.styles` against the dataset, once it exists and before any stage trains (D2MError naming the key)."""
    if "data" not in records or not list(cfg.data.styles or []):
        return
    from common.errors import D2MError
    from datamodules.dataset import CanonicalDataset

    try:
        CanonicalDataset(records["data"]["root"]).check_styles(list(cfg.data.styles))
    except D2MError as err:
        raise D2MError(f"data.styles: {err}") from None


def run_stage(cfg: DictConfig, stage: str, records: dict[str, dict], on_event: Callable[[str, str], None]) -> dict:
    """Run one stage unless its folder is already done; return its record (also stored in done.json)."""
    check_styles_before_training(cfg, records)
    folder = stage_dir(cfg, stage)
    with stage_lock(folder, on_wait=lambda: on_event(stage, "waiting")):
        if is_done(folder):
            on_event(stage, "cached")
            return read_json(folder / "done.json")
        folder.mkdir(parents=True, exist_ok=True)
        if is_rank_zero():
            write_text(folder / "stage.yaml", stage_yaml(cfg, stage))
        on_event(stage, "start")
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
        record = STAGE_FUNCTIONS[stage](cfg, folder, records)
        record.update(key=stage_key(cfg, stage), dir=str(folder.resolve()), stage=stage)
        if is_rank_zero():
            mark_done(folder, record)
        on_event(stage, "done")
        return record
