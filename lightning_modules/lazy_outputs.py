"""The lazy forward pass shared by the LightningModules: a mapping of named tensors built on first read.

A step's loss terms read the tensors they need by name; each tensor is produced the first time any
term reads it, so a switched-off term's products are never computed. Only computed values count as
present, so `computed` shows what a step cost (tests use it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import torch


class LazyOutputs(Mapping):
    """Subclasses fill `_values` with the inputs and `_producers` with name -> function that computes it."""

    kind = "forward pass"

    def __init__(self) -> None:
        self._values: dict[str, torch.Tensor] = {}
        self._producers: dict[str, Callable[[], None]] = {}

    def _get(self, key: str) -> torch.Tensor:
        if key not in self._values:
            producer = self._producers.get(key)
            if producer is None:
                raise KeyError(f"the {self.kind} produces no '{key}'")
            producer()
        return self._values[key]

    def __getitem__(self, key: str) -> torch.Tensor:
        return self._get(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    @property
    def computed(self) -> set[str]:
        return set(self._values)
