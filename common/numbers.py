"""How every table prints a number: three significant digits, whole numbers from 1000 up, "-" for none."""

from __future__ import annotations

import math
from typing import Any


def format_number(v: Any, digits: int = 3) -> str:
    """A table cell: `v` to `digits` significant digits (1000 and above without decimals); "-" for a
    missing or non-finite value; text that is not a number stays as it is."""
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if not math.isfinite(f):
        return "-"
    return f"{f:.{digits}g}" if abs(f) < 10**digits else f"{f:.0f}"
