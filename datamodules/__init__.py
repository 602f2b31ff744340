"""Data: skeleton, audio features, the synthetic generator, dataset readers and LightningDataModules."""

from datamodules.errors import D2MError

__all__ = ["D2MError"]
