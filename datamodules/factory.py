"""From the data config block to a ready dataset and DataModule.

`ensure_dataset` is what lets every command run on a fresh clone: with `data.source: synth` the
built-in dataset is generated on first use. For a dataset that already exists it refuses a feature
config that differs from the one the dataset was built with, naming the key, so that a model never
trains on features other than those its config describes. The `backend` key is left out of that
check: it is how features are computed, not what they are (a test holds the backends to the same
numbers).
"""

from __future__ import annotations

import contextlib
import fcntl
import sys
from collections.abc import Iterator, Mapping
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from common.errors import D2MError
from datamodules.config import DataConfig, FeatureConfig, SynthConfig
from datamodules.dataset import CanonicalDataset, check_out, is_complete

KINDS = ("style", "units", "sequences")
SOURCES = ("synth", "canonical")
NOT_COMPARED = {"backend"}


def as_data_config(cfg: Any) -> DataConfig:
    """A DataConfig from a DataConfig, an OmegaConf node or a plain mapping (unknown keys: D2MError)."""
    if isinstance(cfg, DataConfig):
        return cfg
    try:
        from omegaconf import OmegaConf

        if OmegaConf.is_config(cfg):
            cfg = OmegaConf.to_container(cfg, resolve=True)
    except ImportError:  # omegaconf is a dependency, but the data layer does not need it
        pass
    if not isinstance(cfg, Mapping):
        raise D2MError(f"data config must be a mapping or DataConfig, got {type(cfg).__name__}")
    return _build(DataConfig, dict(cfg), "data")


def _build(cls: type, values: dict, prefix: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    nested = {"synth": SynthConfig, "features": FeatureConfig}
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            raise D2MError(f"unknown config key '{prefix}.{key}'; allowed here: {', '.join(known)}")
        if key in nested and isinstance(value, Mapping):
            value = _build(nested[key], dict(value), f"{prefix}.{key}")
        kwargs[key] = list(value) if isinstance(value, tuple) else value
    return cls(**kwargs)


def _compare(stored: dict, wanted: dict, prefix: str, root: Path) -> None:
    for key in sorted(set(stored) | set(wanted)):
        if key in NOT_COMPARED:
            continue
        if stored.get(key) != wanted.get(key):
            raise D2MError(
                f"dataset {root} was built with {prefix}.{key}={stored.get(key)!r} but the config asks for "
                f"{wanted.get(key)!r}; use the dataset's value or another data.root"
            )


@contextlib.contextmanager
def _build_lock(root: Path) -> Iterator[None]:
    """One builder at a time per dataset folder (parallel matrix cells may all ask for it)."""
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_dataset(data_cfg: Any) -> Path:
    """The dataset folder for a data config: built when synthetic and absent, checked when present."""
    cfg = as_data_config(data_cfg)
    if cfg.source not in SOURCES:
        raise D2MError(f"unknown data.source '{cfg.source}'; known: {', '.join(SOURCES)}")
    root = Path(cfg.root)
    if not is_complete(root):
        if cfg.source != "synth":
            raise D2MError(f"no dataset at data.root={root} (dataset.json missing); build one with "
                           "`d2m data synth`, `d2m data import-d2m` or `d2m data prepare`, "
                           "or set data.source=synth")
        with _build_lock(root):
            if not is_complete(root):  # another process may have built it while we waited
                from datamodules.synth import build_synthetic

                check_out(root, "synth", flag="data.root")  # never write into a folder holding something else
                build_synthetic(root, cfg.synth, cfg.features)
    meta = CanonicalDataset(root).meta
    if cfg.source == "synth" and meta.get("source") != "synth":
        print(f"d2m: data.root={root} holds a d2m-lab '{meta.get('source')}' dataset, not a synthetic one: "
              "using it as it is (as data.source=canonical would)", file=sys.stderr, flush=True)
    _compare(dict(meta.get("feature_spec", {})), asdict(cfg.features), "data.features", root)
    if cfg.source == "synth" and "synth" in meta:
        _compare(dict(meta["synth"]), asdict(cfg.synth), "data.synth", root)
    return root


def build_datamodule(kind: str, data_cfg: Any, root: str | Path | None = None, batch_size: int = 64,
                     seed: int = 0, window: int | None = None):
    """A DataModule of `kind` (style | units | sequences) for the data config.

    `root` defaults to `ensure_dataset(data_cfg)`; `window` is the style-extractor window in frames
    (style only, default 30). The style kind always uses every style of the dataset (a classifier
    must see them all); units and sequences honour `data.styles`.
    """
    from datamodules.lightning_data import SequenceDataModule, StyleWindowDataModule, UnitDataModule
    from datamodules.units import UnitSpec

    cfg = as_data_config(data_cfg)
    if kind not in KINDS:
        raise D2MError(f"unknown DataModule kind '{kind}'; known: {', '.join(KINDS)}")
    root = Path(root) if root is not None else ensure_dataset(cfg)
    common = {"batch_size": batch_size, "seed": seed, "num_workers": cfg.num_workers}
    if kind == "style":
        return StyleWindowDataModule(root, window=window or 30, stride=cfg.window_stride, **common)
    spec = UnitSpec(mode=cfg.unit_mode, unit_frames=cfg.unit_frames, stride=cfg.unit_stride,
                    sequence_units=cfg.sequence_units, min_gap=cfg.beat_min_gap, max_gap=cfg.beat_max_gap)
    styles = list(cfg.styles) or None
    if kind == "units":
        return UnitDataModule(root, spec, jitter=(cfg.jitter_x, cfg.jitter_y), scale_jitter=cfg.scale_jitter,
                              bone_jitter=cfg.bone_jitter, mirror=cfg.mirror, styles=styles, **common)
    return SequenceDataModule(root, spec, styles=styles, mirror=cfg.sequence_mirror, **common)

