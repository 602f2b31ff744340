"""Mean, spread and the difference to a baseline, so that "no visible difference" is a measurement."""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats


def mean_std(values: list[float]) -> tuple[float, float]:
    a = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if a.size == 0:
        return math.nan, math.nan
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else math.nan


def welch(values: list[float], baseline: list[float], level: float = 0.95) -> dict[str, float]:
    """Difference of means (values - baseline), its Welch confidence interval and t-test p-value.

    With fewer than two samples on either side there is no spread to test against: the difference
    is still given, the interval and p-value are NaN.
    """
    a = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    b = np.asarray([v for v in baseline if not math.isnan(v)], dtype=float)
    out = {"diff": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p": math.nan}
    if a.size == 0 or b.size == 0:
        return out
    out["diff"] = float(a.mean() - b.mean())
    if a.size < 2 or b.size < 2:
        return out
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    if se == 0:
        out.update(ci_low=out["diff"], ci_high=out["diff"], p=1.0 if out["diff"] == 0 else 0.0)
        return out
    dof = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    half = stats.t.ppf(0.5 + level / 2, dof) * se
    with warnings.catch_warnings():  # a side of identical values (e.g. 100% on every seed) is fine here
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    out.update(ci_low=out["diff"] - half, ci_high=out["diff"] + half, p=p)
    return out
