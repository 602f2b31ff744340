"""Train / val / test assignment by clip (or by a group of clips, such as one video).

Splitting by clip, never by window, keeps every piece of test music out of training. Groups go
further where a source has them: clips cut from one video share a dancer and a song, so they all
land in the same split.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def assign_splits(n: int, rng: np.random.Generator) -> list[str]:
    """Split n items of one style: a sixth (at least one) each to val and test, the rest to train.

    Fewer than three items cannot fill all three splits; they all go to train.
    """
    if n < 3:
        return ["train"] * n
    n_hold = max(1, int(round(n / 6)))
    order = rng.permutation(n)
    splits = ["train"] * n
    for i in order[:n_hold]:
        splits[i] = "val"
    for i in order[n_hold : 2 * n_hold]:
        splits[i] = "test"
    return splits


def assign_group_splits(groups: Sequence[str], rng: np.random.Generator) -> list[str]:
    """Split items by their group label: with three or more groups every group is kept whole,
    otherwise items are split one by one."""
    names = sorted(set(groups))
    if len(names) >= 3:
        by_group = dict(zip(names, assign_splits(len(names), rng)))
        return [by_group[g] for g in groups]
    return assign_splits(len(groups), rng)
