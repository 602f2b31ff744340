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


def paired(values: dict[int, float], baseline: dict[int, float], level: float = 0.95) -> dict[str, float]:
    """Difference to a baseline over the seeds both sides ran, seed by seed: mean difference, its
    confidence interval and the paired t-test's p-value (`test` = "paired").

    Two cells of one matrix with one seed share that seed's data order, VAE and style extractor
    wherever their stage keys agree, so a lucky seed is lucky in both: differences taken seed by
    seed leave that shared luck out, which the Welch test of two independent samples counts as noise.
    With fewer than two seeds in common, or seeds that do not match, it is `welch` of all the values
    (`test` = "welch").
    """
    both = sorted(s for s in values if s in baseline and not math.isnan(values[s]) and not math.isnan(baseline[s]))
    if len(both) < 2 or len(both) != len(values) or len(both) != len(baseline):
        return {**welch(list(values.values()), list(baseline.values()), level), "test": "welch"}
    d = np.asarray([values[s] - baseline[s] for s in both], dtype=float)
    diff = float(d.mean())
    se = float(d.std(ddof=1)) / math.sqrt(d.size)
    if se == 0:
        return {"diff": diff, "ci_low": diff, "ci_high": diff, "p": 1.0 if diff == 0 else 0.0, "test": "paired"}
    half = stats.t.ppf(0.5 + level / 2, d.size - 1) * se
    p = float(stats.ttest_rel([values[s] for s in both], [baseline[s] for s in both]).pvalue)
    return {"diff": diff, "ci_low": diff - half, "ci_high": diff + half, "p": p, "test": "paired"}
