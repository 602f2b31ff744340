"""Data: skeleton, audio features, the synthetic generator, dataset readers and LightningDataModules.

The public names below are resolved on first use, so that importing a light module (for instance
`common.errors`, which every package does) never pays for librosa or Lightning.
"""

from importlib import import_module
from typing import Any

from common.errors import D2MError

_EXPORTS = {
    "build_datamodule": "datamodules.factory",
    "ensure_dataset": "datamodules.factory",
    "as_data_config": "datamodules.factory",
    "StyleWindowDataModule": "datamodules.lightning_data",
    "UnitDataModule": "datamodules.lightning_data",
    "SequenceDataModule": "datamodules.lightning_data",
    "CanonicalDataset": "datamodules.dataset",
    "Clip": "datamodules.dataset",
    "build_synthetic": "datamodules.synth",
    "import_d2m": "datamodules.import_d2m",
    "prepare_dataset": "datamodules.prepare",
    "load_audio": "datamodules.audio",
    "compute_features": "datamodules.audio",
    "feature_dim": "datamodules.audio",
    "music_beats": "datamodules.audio",
}

__all__ = ["D2MError", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'datamodules' has no attribute {name!r}")
