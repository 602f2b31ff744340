"""Scoring dances on a dataset's test music: generated dances, and real ones as the reference row.

Protocol (DESIGN.md section 4, the original authors' stated one): for each test clip (at most
`max_clips`, taken round-robin over the styles so that a small evaluation still sees every style),
`samples_per_clip` dances are generated from the clip's normalised music features. Each dance is cut
into non-overlapping windows of the dance classifier's length (a dance shorter than that is read
whole); the classifier's predictions give the style consistency and its features the FID against
the real training dances, the diversity (windows of different music) and the multimodality (windows
at the same place of the same music and initial pose). Beat metrics compare each dance's kinematic
beats, in pixel space, with its music's beats in frame indices. Real test dances are scored the same
way, one dance per clip; their FID is real test against real training dances, and their
multimodality is undefined (NaN).

Nothing here writes files except the classifier cache; the caller records the returned numbers.
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

from datamodules.errors import D2MError
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

METRIC_NAMES = ("style_consistency", "fid", "diversity", "multimodality", "beat_coverage",
                "beat_hit_rate", "beat_align")
"""The metric columns of every result row, in table order."""

EXTRA_NAMES = ("classifier_test_accuracy", "n_clips", "n_clips_skipped", "n_dances", "n_windows")
"""Bookkeeping numbers returned with the metrics: how much was scored and by how good a classifier."""

MIN_FRAMES = UNIT_FRAMES
"""Shortest test clip that is scored (one dance unit); shorter clips are skipped and counted."""

CLASSIFIER_SEED = 0
"""The classifier is the measuring instrument: one per dataset and config, whatever the run's seed."""

GenerateFn = Callable[[torch.Tensor, int, torch.Generator], Any]


@dataclass
class _Dance:
    clip: int  # index of the clip (its music) in the evaluated list
    sample: int
    label: int
    normalised: np.ndarray  # (T, 28)
    pixels: np.ndarray  # (T, 28)
    beats: np.ndarray  # music beats inside the dance, frame indices


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


def _reference_features(model: DanceStyleClassifier, view: DatasetView) -> np.ndarray:
    windows = [w for c in view.clips("train") for w in windows_of(view.normalise(c.poses), model.window,
                                                                  model.window)]
    if not windows:
        raise D2MError(f"{view.root}: the training split holds no dances to compare against")
    feats, _ = model.embed(windows)
    return feats


def _score(dances: list[_Dance], model: DanceStyleClassifier, train_feats: np.ndarray,
           cfg: EvaluationConfig) -> dict[str, float]:
    """All metrics of a set of dances (see the module docstring for the protocol)."""
    windows, labels, music, places = [], [], [], []
    for d in dances:
        for k, w in enumerate(windows_of(d.normalised, model.window, model.window)):
            windows.append(w)
            labels.append(d.label)
            music.append(d.clip)
            places.append(d.clip * 100_000 + k)  # same music, same initial pose, same place in it
    nan = float("nan")
    out = dict.fromkeys(METRIC_NAMES, nan)
    if windows:
        feats, pred = model.embed(windows)
        out["style_consistency"] = M.style_consistency(pred, labels)
        out["fid"] = M.frechet_distance(feats, train_feats) if len(windows) >= 2 else nan
        out["diversity"] = M.diversity(feats, music)
        out["multimodality"] = M.multimodality(feats, places)
    kin = [M.kinematic_beats(d.pixels, cfg.motion_smoothing) for d in dances]
    beats = [d.beats for d in dances]
    if dances:
        out["beat_coverage"] = M.beat_coverage(kin, beats)
        out["beat_hit_rate"] = M.beat_hit_rate(kin, beats, cfg.beat_tolerance)
        out["beat_align"] = M.beat_align_score(kin, beats, cfg.beat_align_sigma)
    out["n_dances"] = float(len(dances))
    out["n_windows"] = float(len(windows))
    return out


def _prepare(dataset_root: str | Path, cfg: EvaluationConfig, cache_dir: str | Path):
    model, report = get_dance_classifier(dataset_root, cfg.classifier, cache_dir, seed=CLASSIFIER_SEED)
    view = open_dataset(dataset_root)
    selected = select_clips(view.clips("test"), cfg.max_clips)
    if not selected:
        raise D2MError(f"{dataset_root}: the test split holds no clips to evaluate on")
    usable = [c for c in selected if len(c.poses) >= MIN_FRAMES and len(c.features) >= MIN_FRAMES]
    return model, report, view, usable, len(selected) - len(usable)


def _with_extras(scores: dict[str, float], report: dict, n_clips: int, skipped: int) -> dict[str, float]:
    scores["classifier_test_accuracy"] = float(report.get("test_accuracy", float("nan")))
    scores["n_clips"] = float(n_clips)
    scores["n_clips_skipped"] = float(skipped)
    return {k: float(scores[k]) for k in (*METRIC_NAMES, *EXTRA_NAMES)}


def reference_metrics(dataset_root: str | Path, eval_cfg: Any, cache_dir: str | Path) -> dict[str, float]:
    """The real-data row: the test split's real dances scored exactly like generated ones.

    FID is real test against real training dances; multimodality is NaN (one dance per music).
    """
    cfg = as_evaluation_config(eval_cfg)
    model, report, view, clips, skipped = _prepare(dataset_root, cfg, cache_dir)
    train_feats = _reference_features(model, view)
    dances = []
    for i, c in enumerate(clips):
        n = min(len(c.poses), len(c.features))
        dances.append(_Dance(clip=i, sample=0, label=c.label, normalised=view.normalise(c.poses[:n]),
                             pixels=c.poses[:n], beats=M.as_frame_indices(c.beats, n)))
    return _with_extras(_score(dances, model, train_feats, cfg), report, len(clips), skipped)


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
    cfg = as_evaluation_config(eval_cfg)
    if cfg.samples_per_clip < 1:
        raise D2MError(f"evaluation.samples_per_clip must be >= 1, got {cfg.samples_per_clip}")
    model, report, view, clips, skipped = _prepare(dataset_root, cfg, cache_dir)
    train_feats = _reference_features(model, view)
    dances = []
    for i, c in enumerate(clips):
        n = min(len(c.poses), len(c.features))
        features = torch.from_numpy((c.features[:n] - view.feature_mean) / view.feature_std).float()
        generator = torch.Generator().manual_seed(_clip_seed(seed, c.clip_id))
        init_pose = torch.from_numpy(view.normalise(c.poses[:1])[0]).float()
        poses = _as_samples(generate(features, cfg.samples_per_clip, generator, init_pose),
                            cfg.samples_per_clip, n, c.clip_id)
        for s, p in enumerate(poses):
            dances.append(_Dance(clip=i, sample=s, label=c.label, normalised=p, pixels=view.unnormalise(p),
                                 beats=M.as_frame_indices(c.beats, len(p))))
    return _with_extras(_score(dances, model, train_feats, cfg), report, len(clips), skipped)


def evaluate_generator(generate_fn: GenerateFn, dataset_root: str | Path, eval_cfg: Any,
                       cache_dir: str | Path, seed: int) -> dict[str, float]:
    """Score a dance generator on the test split's music; returns `METRIC_NAMES` + `EXTRA_NAMES`.

    `generate_fn(features, samples, generator)` gets one clip's normalised music features (T, F) as
    a float32 tensor, the number of dances to make and a seeded torch.Generator (one per clip, from
    `seed` and the clip id), and returns (samples, T, 28) normalised poses (a tensor or an array; a
    shorter T is scored as far as it goes, a longer one is cut to the music). FID is generated
    against real training dances. Deterministic for a given seed and deterministic generator.
    """
    return _evaluate(lambda f, n, g, init: generate_fn(f, n, g), dataset_root, eval_cfg, cache_dir, seed)


def evaluate_composition(module: Any, dataset_root: str | Path, eval_cfg: Any, cache_dir: str | Path,
                         seed: int) -> dict[str, float]:
    """Score a trained CompositionModule through `lightning_modules.generation.generate_dance`.

    Every sample of a clip starts from the same initial pose, the clip's first real pose, so that the
    spread between samples is the multimodality "for the same music and initial pose".
    """
    from lightning_modules.generation import generate_dance

    try:
        device = next(module.parameters()).device
    except (StopIteration, AttributeError):
        device = torch.device("cpu")

    def generate(features: torch.Tensor, samples: int, generator: torch.Generator, init_pose: torch.Tensor):
        return generate_dance(module, features.to(device), samples=samples, init_pose=init_pose.to(device),
                              generator=generator)

    was_training = bool(getattr(module, "training", False))
    if hasattr(module, "eval"):
        module.eval()
    try:
        with torch.no_grad():
            return _evaluate(generate, dataset_root, eval_cfg, cache_dir, seed)
    finally:
        if was_training:
            module.train()
