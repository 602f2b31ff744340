"""The demo's learning targets, checked number by number against one run's metrics.json.

A demo that trains is not yet a demo that learns: these are the levels at which the built-in data
is learnt (docs/training.md), each read from what the run already recorded (the decomposition
stage's test metrics, the evaluation and its reference rows and controls). A target whose numbers
are missing counts as not met, never as met.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from common.atomic import write_json, write_text
from common.numbers import format_number

__all__ = ["TARGETS", "Target", "check_targets", "targets_markdown", "write_targets"]

Metrics = Mapping[str, float]


@dataclass(frozen=True)
class Target:
    """One target: what it asks, the value it reads, and the bound that value must meet."""

    name: str
    wants: str  # the bound, as a reader would write it
    value: Callable[[Metrics], float]
    met: Callable[[float], bool]


def _key(name: str) -> Callable[[Metrics], float]:
    return lambda m: float(m.get(name, math.nan))


def _ratio(num: str, den: str) -> Callable[[Metrics], float]:
    return lambda m: float(m.get(num, math.nan)) / float(m.get(den, math.nan) or math.nan)


def _fid_margin(m: Metrics) -> float:
    """How far the kinetic FID lies below the better of the static and random-walk controls, in floors."""
    fid = float(m.get("evaluation/fid_kinetic", math.nan))
    floor = float(m.get("evaluation/fid_kinetic_floor", math.nan))
    controls = [float(m.get(f"reference/controls/{c}/fid_kinetic", math.nan)) for c in ("static", "random_walk")]
    if not all(math.isfinite(x) for x in (fid, floor, *controls)) or floor <= 0:
        return math.nan
    return (min(controls) - fid) / floor


TARGETS: tuple[Target, ...] = (
    Target("VAE test reconstruction / first-pose baseline", "<= 0.4",
           _key("decomposition/test/recon_ratio"), lambda v: v <= 0.4),
    Target("VAE reconstructed speed / real unit speed", "0.8 - 1.2",
           _key("decomposition/test/speed_ratio"), lambda v: 0.8 <= v <= 1.2),
    Target("generated speed / real test dance speed", "0.7 - 1.3",
           _key("evaluation/speed_ratio"), lambda v: 0.7 <= v <= 1.3),
    Target("bone length error (mean relative)", "<= 0.10",
           _key("evaluation/bone_length_error"), lambda v: v <= 0.10),
    Target("style consistency (motion-aware classifier)", ">= 0.7",
           _key("evaluation/style_consistency"), lambda v: v >= 0.7),
    Target("kinetic FID below static and random walk, in noise floors", "> 2",
           _fid_margin, lambda v: v > 2.0),
    Target("beat F1 / real test dances' beat F1", ">= 0.6",
           _ratio("evaluation/beat_f1", "reference/beat_f1"), lambda v: v >= 0.6),
    Target("speed on beat frames / mean speed", "< 0.6",
           _key("evaluation/beat_speed_ratio"), lambda v: v < 0.6),
    Target("seam step / step within units", "<= 2",
           _key("evaluation/seam_ratio"), lambda v: v <= 2.0),
    Target("multimodality / diversity", ">= 0.5",
           _ratio("evaluation/multimodality", "evaluation/diversity_kinetic"), lambda v: v >= 0.5),
)


def check_targets(metrics: Metrics, minutes: float | None = None) -> list[dict]:
    """One row per target: name, wants, value, met. `minutes` (the demo's wall time) adds the budget row."""
    rows = []
    for t in TARGETS:
        v = t.value(metrics)
        rows.append({"target": t.name, "wants": t.wants, "value": v, "met": bool(math.isfinite(v) and t.met(v))})
    if minutes is not None:
        rows.append({"target": "wall time of this make demo (minutes; stages found trained are not retrained)",
                     "wants": "<= 10", "value": minutes, "met": bool(minutes <= 10.0)})
    return rows


def targets_markdown(rows: list[dict], title: str) -> str:
    met = sum(r["met"] for r in rows)
    lines = [f"{title}: {met} of {len(rows)} targets met.", "", "| target | wants | value | met |", "|---|---|---|---|"]
    lines += [f"| {r['target']} | {r['wants']} | {format_number(r['value'])} | {'yes' if r['met'] else 'no'} |"
              for r in rows]
    return "\n".join(lines) + "\n"


def write_targets(rows: list[dict], out: Path, title: str) -> str:
    """targets.json and targets.md in `out`; returns the Markdown."""
    text = targets_markdown(rows, title)
    write_json(out / "targets.json", rows)
    write_text(out / "targets.md", text)
    return text
