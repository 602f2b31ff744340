"""Control dances: what a metric says about dances whose quality is known, on the same test music.

- `real`: the held-out test dances (the ceiling a generator aims for);
- `static`: the first real pose held for the whole clip (a statue);
- `jitter`: static plus Gaussian noise of `JITTER_PX` pixels (keypoint noise, no dance);
- `random_walk`: from the first pose, every joint coordinate takes independent Gaussian steps sized
  so that the mean joint speed equals the real dance's (motion, but no dance and no music);
- `reversed`: the real dance played backwards (real motion statistics, beats in the wrong places);
- `shifted`: the real dance moved `SHIFT_FRAMES` frames later against its music;
- `mismatched`: the real dance of one clip scored against the music (beats and style) of the next.

A metric that cannot rank `real` above `static`, `jitter` and `random_walk` by more than its noise
floor cannot tell a dance from a statue; `d2m evaluate --controls` writes the table.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from common.atomic import write_json, write_text
from common.numbers import format_number
from evaluation import metrics as M
from evaluation.evaluate import METRIC_NAMES, Dance, Instrument, build_instrument, protocol, score_dances

CONTROLS = ("real", "static", "jitter", "random_walk", "reversed", "shifted", "mismatched")
TABLE_CONTROLS = ("real", "static", "random_walk")
"""The controls every ablation table shows under its cells: ceiling, statue and chance."""

JITTER_PX = 0.5
SHIFT_FRAMES = 2
CONTROL_SEED = 0


def _with_pixels(d: Dance, pixels: np.ndarray, inst: Instrument, **changes: Any) -> Dance:
    pixels = np.asarray(pixels, dtype=np.float32)
    return dataclasses.replace(d, pixels=pixels, normalised=inst.view.normalise(pixels), **changes)


def control_dances(name: str, inst: Instrument) -> list[Dance]:
    """The dances of one control, one per evaluated test clip, paired with that clip's music."""
    rng = np.random.default_rng([CONTROL_SEED, CONTROLS.index(name) if name in CONTROLS else 99])
    real = inst.real
    if name == "real":
        return list(real)
    out = []
    for i, d in enumerate(real):
        p = d.pixels
        if name == "static":
            out.append(_with_pixels(d, np.repeat(p[:1], len(p), axis=0), inst))
        elif name == "jitter":
            out.append(_with_pixels(d, np.repeat(p[:1], len(p), axis=0) + rng.normal(0, JITTER_PX, p.shape), inst))
        elif name == "random_walk":
            # steps of std s per coordinate: the central difference (x[t+1] - x[t-1]) / 2 has std s / sqrt(2)
            # per coordinate, and a 2D Gaussian of std sigma has mean length sigma * sqrt(pi / 2)
            step = M.motion_speed(p).mean() * np.sqrt(2) / np.sqrt(np.pi / 2)
            walk = p[:1] + np.concatenate([np.zeros((1, p.shape[1])),
                                           np.cumsum(rng.normal(0, step, (len(p) - 1, p.shape[1])), axis=0)])
            out.append(_with_pixels(d, walk, inst))
        elif name == "reversed":
            out.append(_with_pixels(d, p[::-1].copy(), inst))
        elif name == "shifted":
            out.append(_with_pixels(d, np.concatenate([np.repeat(p[:1], SHIFT_FRAMES, axis=0), p[:-SHIFT_FRAMES]]),
                                    inst))
        elif name == "mismatched":
            other = real[(i + 1) % len(real)]
            n = min(len(p), len(other.pixels))
            out.append(_with_pixels(d, p[:n], inst, clip=other.clip, label=other.label,
                                    beats=other.beats[other.beats < n],
                                    beats_true=None if other.beats_true is None
                                    else other.beats_true[other.beats_true < n]))
        else:
            from common.errors import D2MError

            raise D2MError(f"unknown control '{name}'; known: {', '.join(CONTROLS)}")
    return out


def control_scores(inst: Instrument, names: tuple[str, ...] = CONTROLS) -> dict[str, dict[str, float]]:
    """Every control's metrics (the same `score_dances` as a generated set)."""
    return {name: score_dances(control_dances(name, inst), inst)[0] for name in names}


def controls_table(dataset_root: str | Path, eval_cfg: Any, cache_dir: str | Path):
    """(rows, instrument): one dict per control with every metric, its floor and its interval."""
    inst = build_instrument(dataset_root, eval_cfg, cache_dir)
    rows = []
    for name, scores in control_scores(inst).items():
        rows.append({"control": name, **scores, **inst.floors})
    return rows, inst




TRUE_BEAT_NAMES = ("beat_f1_true", "beat_align_true", "beat_align_motion_true")


def controls_markdown(rows: list[dict], inst: Instrument, columns: tuple[str, ...] = (*METRIC_NAMES,
                                                                                      *TRUE_BEAT_NAMES)) -> str:
    """The controls table in Markdown, a floor line under it, and what the numbers are measured on."""
    shown = [c for c in columns if any(c in r for r in rows)]
    lines = ["| control | " + " | ".join(shown) + " |", "|---|" + "---|" * len(shown)]
    for r in rows:
        lines.append(f"| {r['control']} | " + " | ".join(format_number(r.get(c, float("nan"))) for c in shown) + " |")
    lines.append("| *noise floor* | " + " | ".join(format_number(inst.floors.get(f"{c}_floor", float("nan")))
                                                   for c in shown) + " |")
    p = protocol(inst)
    lines += ["", f"{len(inst.real)} test clips at {p['protocol/fps']:g} fps; FIDs on n = {inst.n_fid} windows "
              f"of {inst.model.window} frames per set (reference: training dances); floors: median over "
              f"{inst.cfg.bootstrap} real-vs-real splits; beats: tracked music beats (`_true`: the "
              f"true beats), +-{inst.cfg.beat_tolerance} frame for the F-measure, sigma "
              f"{inst.cfg.beat_align_sigma:g} frames for beat align."]
    return "\n".join(lines) + "\n"


def write_controls(out_dir: str | Path, dataset_root: str | Path, eval_cfg: Any, cache_dir: str | Path) -> Path:
    """`d2m evaluate --controls`: DIR/controls.csv, DIR/controls.md and DIR/protocol.json."""
    import pandas as pd

    rows, inst = controls_table(dataset_root, eval_cfg, cache_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "controls.csv", pd.DataFrame(rows).to_csv(index=False))
    write_text(out / "controls.md", controls_markdown(rows, inst))
    write_json(out / "protocol.json", {**protocol(inst), "dataset": str(dataset_root),
                                       "reference_split": "train", "beat_source": "tracked; _true: true beats",
                                       "controls": list(CONTROLS)})
    return out / "controls.csv"
