"""Scoring dances on a dataset's test music, with the noise floors that say which differences count.

Protocol (DESIGN.md section 4). For each test clip (at most `max_clips`, taken round-robin over the
styles so that a small evaluation still sees every style) `samples_per_clip` dances are generated
from the clip's normalised music features. Every dance is cut into windows of the classifier's
length every `fid_stride` frames (a dance shorter than that is one window), and the real training
dances are cut the same way: they are the reference set of both FIDs.

- `fid_kinetic`: Frechet distance of kinetic features (per joint mean squared horizontal and
  vertical speed and mean acceleration magnitude, pixels at the data's fps), standardised by the
  reference set's mean and std; `fid_classifier`: the same on the dance classifier's features.
  Both draw the SAME number n of windows (`fid_samples`) from the dances and from the reference,
  with a fixed seed; `<fid>_ci_low/_ci_high` is a bootstrap 95% interval, and `<fid>_floor` the
  median FID between two disjoint n-window halves of the real reference (`_floor_low/_high`: its
  95% range). A FID within about its floor of another is not a difference.
- `style_consistency`: share of windows the classifier gives their music's style.
- `diversity_kinetic` / `multimodality`: mean standardised-kinetic-feature distance between
  windows of different music / of the same place in the same music and initial pose.
- `beat_align` (over music beats), `beat_align_motion` (over kinematic beats) and `beat_f1`
  (mir_eval, +-`beat_tolerance` frames) on the dataset's tracked beats; with `_true` on the true
  beats where the dataset has them (the built-in one does). A dance without a kinematic beat scores 0.
- `speed_ratio` (mean joint speed / that of the real test dances), `beat_speed_ratio`,
  `bone_length_error` (against the clip's real dancer), `seam_ratio` (steps across unit boundaries).
- Per-dance metrics get `<metric>_floor`: the median absolute difference between the means of two
  random halves of the real test dances.

Controls (`evaluation.controls`) are scored by exactly this code. Nothing here writes files except
the classifier cache; the caller records the returned numbers.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common.errors import D2MError
from evaluation import metrics as M
from evaluation.config import EvaluationConfig
from evaluation.dance_classifier import (
    UNIT_FRAMES,
    ClipArrays,
    DanceStyleClassifier,
    DatasetView,
    as_classifier_config,
    get_dance_classifier,
    open_dataset,
    windows_of,
)
from evaluation.generation import warp_to_beats

# Bumped when a metric's definition changes, so that stored evaluations are scored again (the
# evaluation stage key reads it). 2: seams measured before beat warping.
METRICS_VERSION = 2

FID_NAMES = ("fid_kinetic", "fid_classifier")
BEAT_NAMES = ("beat_f1", "beat_align", "beat_align_motion")
PER_DANCE_NAMES = ("style_consistency", *BEAT_NAMES, "speed_ratio", "beat_speed_ratio", "bone_length_error",
                   "seam_ratio")
METRIC_NAMES = ("fid_kinetic", "fid_classifier", "style_consistency", "diversity_kinetic", "multimodality",
                *BEAT_NAMES, "speed_ratio", "beat_speed_ratio", "bone_length_error", "seam_ratio")
"""The metric columns of every result row, in table order."""

DIRECTIONS = {"fid_kinetic": -1, "fid_classifier": -1, "style_consistency": 1, "diversity_kinetic": 0,
              "multimodality": 1, "beat_f1": 1, "beat_align": 1, "beat_align_motion": 1, "speed_ratio": 0,
              "beat_speed_ratio": -1, "bone_length_error": -1, "seam_ratio": 0}
"""Which way is better: 1 higher, -1 lower, 0 closer to the real dances."""

EXTRA_NAMES = ("classifier_test_accuracy", "n_clips", "n_clips_skipped", "n_dances", "n_windows")
"""Bookkeeping numbers returned with the metrics: how much was scored and by how good a classifier."""

MIN_FRAMES = UNIT_FRAMES
"""Shortest test clip that is scored (one dance unit); shorter clips are skipped and counted."""

CLASSIFIER_SEED = 0
"""The classifier is the measuring instrument: one per dataset and config, whatever the run's seed."""

SUBSET_SEED = 0
"""Which n windows enter a FID, and the resamples of the intervals and floors: fixed, like the instrument."""

GenerateFn = Callable[[torch.Tensor, int, torch.Generator], Any]


@dataclass
class Dance:
    """One dance to score, with the music it is scored against."""

    clip: int  # index of the music (a test clip) in the evaluated list
    sample: int
    label: int  # style of the music
    normalised: np.ndarray  # (T, 28)
    pixels: np.ndarray  # (T, 28)
    beats: np.ndarray  # tracked music beats inside the dance, frame indices
    beats_true: np.ndarray | None  # true music beats, where the dataset has them
    bone_ref: np.ndarray  # (B,) the clip's real dancer's bone lengths
    unwarped: np.ndarray | None = None  # (T, 28) pixels before beat warping, whose unit seams lie every unit_frames


@dataclass
class Instrument:
    """Everything a score is measured against, fixed per dataset and evaluation config."""

    cfg: EvaluationConfig
    model: DanceStyleClassifier
    report: dict
    view: DatasetView
    clips: list[ClipArrays]  # the evaluated test clips
    skipped: int
    fps: float
    n_fid: int
    ref_classifier: np.ndarray  # (N, D) classifier features of the training windows
    ref_kinetic: np.ndarray  # (N, 3J) raw kinetic features of the training windows
    ref_clip: np.ndarray  # (N,) which training clip each reference window comes from
    ref_style: np.ndarray  # (N,) the style label of that clip
    real: list[Dance]  # the real test dances
    real_speed: float  # their mean joint speed, px/frame
    floors: dict[str, float] = dataclasses.field(default_factory=dict)


def as_evaluation_config(cfg: Any) -> EvaluationConfig:
    """An EvaluationConfig from itself, an OmegaConf node or a plain dict (unknown keys are errors)."""
    if isinstance(cfg, EvaluationConfig):
        return cfg
    if cfg is None:
        return EvaluationConfig()
    try:
        from omegaconf import OmegaConf

        d = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else dict(cfg)
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        d = dict(cfg)
    known = {f.name for f in dataclasses.fields(EvaluationConfig)}
    unknown = set(d) - known
    if unknown:
        raise D2MError(f"evaluation: unknown key(s) {sorted(unknown)}")
    classifier = as_classifier_config(d.pop("classifier", {}) or {})
    return dataclasses.replace(EvaluationConfig(), **d, classifier=classifier)


def select_clips(clips: list[ClipArrays], max_clips: int) -> list[ClipArrays]:
    """Test clips in a fixed order, round-robin over styles; the first `max_clips` (0: all)."""
    by_style: dict[str, list[ClipArrays]] = {}
    for c in sorted(clips, key=lambda c: (c.style, c.clip_id)):
        by_style.setdefault(c.style, []).append(c)
    ordered = []
    for i in range(max((len(v) for v in by_style.values()), default=0)):
        ordered.extend(v[i] for v in by_style.values() if i < len(v))
    return ordered[:max_clips] if max_clips > 0 else ordered


def _clip_seed(seed: int, clip_id: str) -> int:
    """A generator seed per clip, stable across processes and independent of which clips run."""
    return (int(seed) * 1_000_003 + zlib.crc32(clip_id.encode())) % (2**63 - 1)


def _kinetic(windows_px: list[np.ndarray], fps: float) -> np.ndarray:
    return np.stack([M.kinetic_features(w, fps) for w in windows_px]) if windows_px else np.zeros((0, 42))


def _real_dance(i: int, c: ClipArrays, view: DatasetView) -> Dance:
    n = min(len(c.poses), len(c.features))
    true = None if c.beats_true is None else M.as_frame_indices(c.beats_true, n)
    return Dance(clip=i, sample=0, label=c.label, normalised=view.normalise(c.poses[:n]), pixels=c.poses[:n],
                 beats=M.as_frame_indices(c.beats, n), beats_true=true,
                 bone_ref=np.median(M.bone_lengths(c.poses[:n]), axis=0))


def _pool_sizes(view: DatasetView, clips: list[ClipArrays], window: int, stride: int) -> tuple[int, int]:
    train = sum(len(windows_of(c.poses, window, stride)) for c in view.clips("train"))
    test = sum(len(windows_of(c.poses[:min(len(c.poses), len(c.features))], window, stride)) for c in clips)
    return train, test


def build_instrument(dataset_root: str | Path, eval_cfg: Any, cache_dir: str | Path) -> Instrument:
    """The classifier, reference windows, real test dances and noise floors of a dataset.

    `fid_samples` = 0 takes n = min(training windows // 2, real test windows): the most that lets
    the floor draw two disjoint halves of the reference and the real test dances fill a set; it
    depends on the dataset and config only, so every run on a dataset uses the same n. A larger
    explicit `fid_samples` is an error.
    """
    cfg = as_evaluation_config(eval_cfg)
    if cfg.fid_stride < 1 or cfg.bootstrap < 1:
        raise D2MError("evaluation.fid_stride and evaluation.bootstrap must be at least 1")
    model, report = get_dance_classifier(dataset_root, cfg.classifier, cache_dir, seed=CLASSIFIER_SEED)
    view = open_dataset(dataset_root)
    selected = select_clips(view.clips("test"), cfg.max_clips)
    if not selected:
        raise D2MError(f"{dataset_root}: the test split holds no clips to evaluate on")
    clips = [c for c in selected if len(c.poses) >= MIN_FRAMES and len(c.features) >= MIN_FRAMES]
    if not clips:
        raise D2MError(f"{dataset_root}: no test clip is at least {MIN_FRAMES} frames long")
    window = model.window
    n_train, n_test = _pool_sizes(view, clips, window, cfg.fid_stride)
    most = min(n_train // 2, n_test)
    if most < 2:
        raise D2MError(f"{dataset_root}: the training split gives {n_train} windows of {window} frames and the "
                       f"test split {n_test}; the FIDs need at least 4 and 2")
    n_fid = cfg.fid_samples or most
    if n_fid > most:
        raise D2MError(f"evaluation.fid_samples={n_fid} is more than {dataset_root} can give: {n_train} training "
                       f"windows (the noise floor needs 2 x n) and {n_test} real test windows of {window} frames; "
                       f"use at most {most} (or 0 for that)")
    train_norm, train_px, train_clip, train_style = [], [], [], []
    for k, c in enumerate(view.clips("train")):
        train_px += windows_of(c.poses, window, cfg.fid_stride)
        train_norm += windows_of(view.normalise(c.poses), window, cfg.fid_stride)
        train_style += [c.label] * (len(train_px) - len(train_clip))
        train_clip += [k] * (len(train_px) - len(train_clip))
    fps = float(view.dataset.fps)
    real = [_real_dance(i, c, view) for i, c in enumerate(clips)]
    inst = Instrument(cfg=cfg, model=model, report=report, view=view, clips=clips, skipped=len(selected) - len(clips),
                      fps=fps, n_fid=int(n_fid), ref_classifier=model.embed(train_norm)[0],
                      ref_kinetic=_kinetic(train_px, fps), ref_clip=np.asarray(train_clip),
                      ref_style=np.asarray(train_style), real=real,
                      real_speed=float(np.mean(np.concatenate([M.motion_speed(d.pixels) for d in real]))))
    inst.floors = _floors(inst)
    return inst


# --- scoring ------------------------------------------------------------------------------------


def _fid_with_interval(gen: np.ndarray, ref: np.ndarray, gen_idx: np.ndarray, ref_idx: np.ndarray,
                       boots: list[tuple[np.ndarray, np.ndarray]]) -> tuple[float, float, float]:
    """FID of the chosen n windows of each set and its bootstrap 95% interval over the given resamples."""
    g, r = gen[gen_idx], ref[ref_idx]
    value = M.frechet_distance(g, r)
    lo, hi = np.percentile([M.frechet_distance(g[bg], r[br]) for bg, br in boots], [2.5, 97.5])
    return value, float(lo), float(hi)


def _fid_floor(ref: np.ndarray, clip: np.ndarray, style: np.ndarray, n: int, rng: np.random.Generator,
               bootstrap: int) -> tuple[float, float, float]:
    """Median and 95% range of the FID between n windows of each of two random halves of the reference.

    The halves split the training clips, not the windows, and each style's clips in half (as the
    test split is drawn per style): overlapping windows of one clip are near copies, and a floor
    drawn from them would be lower than the distance between two sets of real dances, which is what
    a real test set is to the training set. With fewer than two clips the windows are split instead.
    """
    clips = np.unique(clip)
    style_of = {int(c): int(style[np.flatnonzero(clip == c)[0]]) for c in clips}
    vals = []
    for _ in range(bootstrap):
        if clips.size >= 2:
            chosen = []
            for s in sorted(set(style_of.values())):
                mine = rng.permutation([c for c in clips if style_of[int(c)] == s])
                odd = len(mine) % 2 and rng.random() < 0.5  # an odd clip out goes to either half
                chosen += list(mine[: len(mine) // 2 + int(odd)])
            first = np.isin(clip, chosen)
            if first.all() or not first.any():
                first = np.isin(clip, rng.permutation(clips)[: clips.size // 2])
            a, b = np.flatnonzero(first), np.flatnonzero(~first)
        else:
            idx = rng.permutation(len(ref))
            a, b = idx[: len(ref) // 2], idx[len(ref) // 2:]
        m = min(n, a.size, b.size)
        vals.append(M.frechet_distance(ref[rng.choice(a, m, replace=False)], ref[rng.choice(b, m, replace=False)]))
    lo, med, hi = np.percentile(vals, [2.5, 50, 97.5])
    return float(med), float(lo), float(hi)


def _per_dance(dances: list[Dance], inst: Instrument, preds: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Every per-dance metric as an array over the dances (NaN where undefined), beats both ways."""
    cfg = inst.cfg
    kin = [M.kinematic_beats(d.pixels, cfg.beat_min_depth) for d in dances]
    out: dict[str, np.ndarray] = {
        "style_consistency": np.array([np.mean(p == d.label) for p, d in zip(preds, dances)]),
        "speed_ratio": np.array([M.motion_speed(d.pixels).mean() / inst.real_speed for d in dances]),
        "beat_speed_ratio": np.array([M.beat_speed_ratio(d.pixels, d.beats) for d in dances]),
        "bone_length_error": np.array([M.bone_length_error(d.pixels, d.bone_ref) for d in dances]),
        "seam_ratio": np.array([M.seam_ratio(d.pixels if d.unwarped is None else d.unwarped, cfg.unit_frames)
                                for d in dances]),  # warping moves the seams: measured where the units meet
    }
    sources = {"": [d.beats for d in dances]}
    if dances and all(d.beats_true is not None for d in dances):
        sources["_true"] = [d.beats_true for d in dances]
    for suffix, music in sources.items():
        out["beat_f1" + suffix] = M.beat_f1_per_dance(kin, music, inst.fps, cfg.beat_tolerance)
        out["beat_align" + suffix] = M.beat_align_per_dance(kin, music, cfg.beat_align_sigma)
        out["beat_align_motion" + suffix] = M.beat_align_motion_per_dance(kin, music, cfg.beat_align_sigma)
    return out


def _mean(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.mean(x[np.isfinite(x)])) if np.any(np.isfinite(x)) else float("nan")


def _windows(dances: list[Dance], inst: Instrument):
    window, stride = inst.model.window, inst.cfg.fid_stride
    norm, px, owner, places = [], [], [], []
    for k, d in enumerate(dances):
        ws = windows_of(d.normalised, window, stride)
        norm += ws
        px += windows_of(d.pixels, window, stride)
        owner += [k] * len(ws)
        places += [d.clip * 100_000 + j for j in range(len(ws))]  # same music, initial pose and place
    return norm, px, np.asarray(owner, dtype=np.int64), np.asarray(places)


def score_dances(dances: list[Dance], inst: Instrument) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """All metrics of a set of dances (see the module docstring), and the per-dance arrays behind them."""
    if not dances:
        raise D2MError("no dances to score")
    cfg, rng = inst.cfg, np.random.default_rng(SUBSET_SEED)
    norm, px, owner, places = _windows(dances, inst)
    feats, pred = inst.model.embed(norm)
    kinetic = M.standardise(_kinetic(px, inst.fps), inst.ref_kinetic)
    ref_kinetic = M.standardise(inst.ref_kinetic, inst.ref_kinetic)
    per = _per_dance(dances, inst, [pred[owner == k] for k in range(len(dances))])
    out: dict[str, float] = {}
    n = min(inst.n_fid, len(norm))
    # the same n windows (and the same resamples) enter both FIDs; the draw does not depend on `bootstrap`
    gen_idx = rng.choice(len(norm), n, replace=False) if n >= 2 else None
    ref_idx = rng.choice(len(ref_kinetic), n, replace=False) if n >= 2 else None
    boot_rng = np.random.default_rng(SUBSET_SEED + 2)
    boots = [(boot_rng.integers(0, n, n), boot_rng.integers(0, n, n)) for _ in range(cfg.bootstrap)]
    for name, gen, ref in (("fid_kinetic", kinetic, ref_kinetic), ("fid_classifier", feats, inst.ref_classifier)):
        if n >= 2:
            out[name], out[f"{name}_ci_low"], out[f"{name}_ci_high"] = _fid_with_interval(gen, ref, gen_idx, ref_idx,
                                                                                        boots)
        else:
            out[name] = out[f"{name}_ci_low"] = out[f"{name}_ci_high"] = float("nan")
    out["style_consistency"] = float(np.mean(pred == np.array([dances[k].label for k in owner])))
    out["diversity_kinetic"] = M.diversity(kinetic, [dances[k].clip for k in owner])
    out["multimodality"] = M.multimodality(kinetic, places)
    for name, values in per.items():
        if name != "style_consistency":
            out[name] = _mean(values)
    out["n_dances"] = float(len(dances))
    out["n_windows"] = float(len(norm))
    out["n_fid"] = float(n)
    return out, per


def _floors(inst: Instrument) -> dict[str, float]:
    """Noise floors: FIDs between halves of the reference, per-dance metrics between halves of the real dances."""
    rng = np.random.default_rng(SUBSET_SEED + 1)
    floors: dict[str, float] = {}
    ref_kinetic = M.standardise(inst.ref_kinetic, inst.ref_kinetic)
    for name, ref in (("fid_kinetic", ref_kinetic), ("fid_classifier", inst.ref_classifier)):
        floors[f"{name}_floor"], floors[f"{name}_floor_low"], floors[f"{name}_floor_high"] = _fid_floor(
            ref, inst.ref_clip, inst.ref_style, inst.n_fid, rng, inst.cfg.bootstrap)
    norm, _, owner, _ = _windows(inst.real, inst)
    pred = inst.model.embed(norm)[1]
    per = _per_dance(inst.real, inst, [pred[owner == k] for k in range(len(inst.real))])
    half = len(inst.real) // 2
    for name, values in per.items():
        if half < 1:
            floors[f"{name}_floor"] = float("nan")
            continue
        diffs = []
        for _ in range(inst.cfg.bootstrap):
            idx = rng.permutation(len(values))
            diffs.append(abs(_mean(values[idx[:half]]) - _mean(values[idx[half:2 * half]])))
        floors[f"{name}_floor"] = float(np.nanmedian(diffs)) if np.any(np.isfinite(diffs)) else float("nan")
    return floors


def protocol(inst: Instrument) -> dict[str, float]:
    """The protocol as numbers (metrics.json holds floats): sizes, windows, beat settings, directions."""
    cfg = inst.cfg
    out = {
        "protocol/fps": inst.fps,
        "protocol/fid_n_per_set": float(inst.n_fid),
        "protocol/fid_window_frames": float(inst.model.window),
        "protocol/fid_stride_frames": float(cfg.fid_stride),
        "protocol/fid_reference_windows": float(len(inst.ref_kinetic)),
        "protocol/fid_reference_is_train_split": 1.0,
        "protocol/bootstrap": float(cfg.bootstrap),
        "protocol/beat_tolerance_frames": float(cfg.beat_tolerance),
        "protocol/beat_align_sigma_frames": float(cfg.beat_align_sigma),
        "protocol/beat_min_depth_px": float(cfg.beat_min_depth),
        "protocol/beats_tracked": 1.0,
        "protocol/beats_true": float(all(d.beats_true is not None for d in inst.real)),
        "protocol/beat_warp": float(cfg.beat_warp),  # the model's dances were warped; real ones never are
        "protocol/seam_blend_frames": float(cfg.seam_blend_frames),  # frames over which generated units were blended
        "protocol/real_test_dances": float(len(inst.real)),
    }
    out.update({f"protocol/direction/{k}": float(v) for k, v in DIRECTIONS.items()})
    return out


def _with_extras(scores: dict[str, float], inst: Instrument) -> dict[str, float]:
    scores = {**scores, **inst.floors, **protocol(inst)}
    scores["classifier_test_accuracy"] = float(inst.report.get("test_accuracy", float("nan")))
    scores["n_clips"] = float(len(inst.clips))
    scores["n_clips_skipped"] = float(inst.skipped)
    return {k: float(v) for k, v in scores.items()}


def reference_metrics(dataset_root: str | Path, eval_cfg: Any, cache_dir: str | Path) -> dict[str, float]:
    """The real-data row: the test split's real dances scored exactly like generated ones.

    With `evaluation.controls` the control dances' metrics come along as `controls/<name>/<metric>`.
    """
    from evaluation.controls import control_scores

    inst = build_instrument(dataset_root, eval_cfg, cache_dir)
    out = _with_extras(score_dances(inst.real, inst)[0], inst)
    if inst.cfg.controls:
        for name, scores in control_scores(inst).items():
            out.update({f"controls/{name}/{k}": float(v) for k, v in scores.items()})
    return out


def _as_samples(out: Any, samples: int, n_frames: int, clip_id: str) -> np.ndarray:
    x = out.detach().float().cpu().numpy() if isinstance(out, torch.Tensor) else np.asarray(out, np.float32)
    if x.ndim == 2 and samples == 1:
        x = x[None]
    if x.ndim == 4 and x.shape[2:] == (14, 2):
        x = x.reshape(x.shape[0], x.shape[1], 28)
    if x.ndim != 3 or x.shape[0] != samples or x.shape[2] != 28 or x.shape[1] < 1:
        raise D2MError(f"generator returned shape {tuple(x.shape)} for clip {clip_id}; "
                       f"expected ({samples}, T, 28) normalised poses")
    if not np.all(np.isfinite(x)):
        raise D2MError(f"generator returned NaN or infinite poses for clip {clip_id}")
    return x[:, :n_frames]


def _evaluate(generate: Callable[[torch.Tensor, int, torch.Generator, torch.Tensor], Any],
              dataset_root: str | Path, eval_cfg: Any, cache_dir: str | Path, seed: int) -> dict[str, float]:
    """Generate for every test clip, then score; with `beat_warp` each dance's kinematic beats move onto the music's."""
    cfg = as_evaluation_config(eval_cfg)
    warp = bool(cfg.beat_warp)
    if cfg.samples_per_clip < 1:
        raise D2MError(f"evaluation.samples_per_clip must be >= 1, got {cfg.samples_per_clip}")
    inst = build_instrument(dataset_root, cfg, cache_dir)
    view = inst.view
    dances = []
    for real, c in zip(inst.real, inst.clips):
        n = len(real.pixels)
        features = torch.from_numpy((c.features[:n] - view.feature_mean) / view.feature_std).float()
        generator = torch.Generator().manual_seed(_clip_seed(seed, c.clip_id))
        init_pose = torch.from_numpy(real.normalised[0]).float()
        poses = _as_samples(generate(features, cfg.samples_per_clip, generator, init_pose),
                            cfg.samples_per_clip, n, c.clip_id)
        for s, p in enumerate(poses):
            t = len(p)
            pixels = unwarped = view.unnormalise(p)
            if warp:  # as `d2m generate --beat-warp` does, on the beats tracked in the music
                pixels = warp_to_beats(unwarped, real.beats[real.beats < t], unit_frames=cfg.unit_frames)
                p = view.normalise(pixels)
            dances.append(dataclasses.replace(
                real, sample=s, normalised=p, pixels=pixels, unwarped=unwarped, beats=real.beats[real.beats < t],
                beats_true=None if real.beats_true is None else real.beats_true[real.beats_true < t]))
    return _with_extras(score_dances(dances, inst)[0], inst)


def evaluate_generator(generate_fn: GenerateFn, dataset_root: str | Path, eval_cfg: Any,
                       cache_dir: str | Path, seed: int) -> dict[str, float]:
    """Score a dance generator on the test split's music; returns the metrics, floors and protocol.

    `generate_fn(features, samples, generator)` gets one clip's normalised music features (T, F) as
    a float32 tensor, the number of dances to make and a seeded torch.Generator (one per clip, from
    `seed` and the clip id), and returns (samples, T, 28) normalised poses (a tensor or an array; a
    shorter T is scored as far as it goes, a longer one is cut to the music). Deterministic for a
    given seed and deterministic generator.
    """
    return _evaluate(lambda f, n, g, init: generate_fn(f, n, g), dataset_root, eval_cfg, cache_dir, seed)


def evaluate_composition(model: Any, dataset_root: str | Path, eval_cfg: Any, cache_dir: str | Path,
                         seed: int) -> dict[str, float]:
    """Score a trained `CompositionGAN` (a `CompositionModule`'s `.model`) through `generate_dance`.

    Every sample of a clip starts from the same initial pose, the clip's first real pose, so that the
    spread between samples is the multimodality "for the same music and initial pose".
    """
    from evaluation.generation import generate_dance

    try:
        device = next(model.parameters()).device
    except (StopIteration, AttributeError):
        device = torch.device("cpu")

    def generate(features: torch.Tensor, samples: int, generator: torch.Generator, init_pose: torch.Tensor):
        return generate_dance(model, features.to(device), samples=samples, init_pose=init_pose.to(device),
                              generator=generator, blend_frames=cfg.seam_blend_frames)

    was_training = bool(getattr(model, "training", False))
    if hasattr(model, "eval"):
        model.eval()
    cfg = as_evaluation_config(eval_cfg)
    if getattr(model, "unit_frames", None):  # the seams of this model's dances
        cfg = dataclasses.replace(cfg, unit_frames=int(model.unit_frames))
    try:
        with torch.no_grad():
            return _evaluate(generate, dataset_root, cfg, cache_dir, seed)
    finally:
        if was_training:
            model.train()
