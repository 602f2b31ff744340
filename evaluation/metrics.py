"""The dance metrics as small pure functions (DESIGN.md section 4).

Every function takes plain arrays and returns a float (or an array), so that the same numbers come
out whether a metric is called from a test, from `evaluation.evaluate` or from a notebook, and none
depends on the order of the dances it is given. Music beats are frame indices at the data's frame
rate (15 fps), never seconds; kinematic beats come from `datamodules.motion`, the one detector.

Conventions: `features` are (N, D) arrays (classifier features or kinetic features); `groups` are
(N,) labels saying which music (and initial pose) a dance was generated for; a pose sequence is
(T, 14, 2) or (T, 28) in pixels. Per-dance scores (`*_per_dance`) are returned as arrays so that a
caller can average them and also split them for a noise floor.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import linalg

from common.errors import D2MError
from datamodules.motion import joint_velocity, kinematic_beats, motion_speed
from datamodules.skeleton import bone_lengths

__all__ = [
    "style_consistency",
    "frechet_distance",
    "kinetic_features",
    "diversity",
    "multimodality",
    "motion_speed",
    "kinematic_beats",
    "as_frame_indices",
    "beat_align_per_dance",
    "beat_align_motion_per_dance",
    "beat_f1_per_dance",
    "beat_speed_ratio",
    "bone_length_error",
    "seam_ratio",
]


# --- feature-based metrics ------------------------------------------------------------------


def style_consistency(predicted: Sequence[int] | np.ndarray, target: Sequence[int] | np.ndarray) -> float:
    """Fraction of dances whose predicted style is the style of their music.

    style_consistency = (1/N) * sum_i [predicted_i == target_i], with `predicted` the dance-style
    classifier's labels for the generated dances and `target` the style label of the music each was
    generated for. 1.0 means every dance looks like its music's style to the classifier.
    """
    predicted = np.asarray(predicted).reshape(-1)
    target = np.asarray(target).reshape(-1)
    if predicted.shape != target.shape:
        raise D2MError(f"style_consistency: {predicted.size} predictions for {target.size} targets")
    if predicted.size == 0:
        raise D2MError("style_consistency: no dances to score")
    return float(np.mean(predicted == target))


def _mean_cov(features: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise D2MError(f"frechet_distance: {name} features must be (N, D), got shape {x.shape}")
    if x.shape[0] < 2:
        raise D2MError(f"frechet_distance: {name} needs at least 2 samples for a covariance, got {x.shape[0]}")
    if not np.all(np.isfinite(x)):
        raise D2MError(f"frechet_distance: {name} features hold NaN or infinite values")
    return x.mean(axis=0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])


def _psd_sqrt(cov: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix through its eigen-decomposition."""
    w, v = linalg.eigh((cov + cov.T) / 2.0)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (the FID of the paper).

    FID = ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)), with mu and S the mean and the
    (unbiased) covariance of each set's features.

    Numerics: the trace of (S_a S_b)^(1/2) equals the trace of (S_a^(1/2) S_b S_a^(1/2))^(1/2), and
    the inner matrix is symmetric positive semi-definite, so its square root is taken from its
    eigenvalues (clipped at 0) in float64. Feeding the non-symmetric product S_a S_b to
    `scipy.linalg.sqrtm` gives the same value when it is well conditioned but returns complex or
    unstable results when the covariances are singular, which they are whenever a set has fewer
    samples than feature dimensions (a small evaluation). The result is clipped at 0.
    """
    mu_a, cov_a = _mean_cov(features_a, "first set")
    mu_b, cov_b = _mean_cov(features_b, "second set")
    if mu_a.shape != mu_b.shape:
        raise D2MError(f"frechet_distance: feature sizes differ ({mu_a.size} vs {mu_b.size})")
    root_a = _psd_sqrt(cov_a)
    inner = root_a @ cov_b @ root_a
    eig = linalg.eigvalsh((inner + inner.T) / 2.0)
    tr_covmean = float(np.sum(np.sqrt(np.clip(eig, 0.0, None))))
    diff = mu_a - mu_b
    fid = float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * tr_covmean)
    return max(fid, 0.0)


def _pair_distances(features: np.ndarray) -> np.ndarray:
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise D2MError(f"features must be (N, D), got shape {x.shape}")
    sq = np.sum(x * x, axis=1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)
    return np.sqrt(np.clip(d2, 0.0, None))


def diversity(features: np.ndarray, groups: Sequence | np.ndarray) -> float:
    """Mean feature distance between dances generated for different music.

    diversity = mean over pairs (i, j), i < j, with groups_i != groups_j of ||f_i - f_j||_2,
    where `groups` names the music each dance was made for. Higher means the generator does not
    produce the same dance whatever the music. NaN when every dance belongs to one piece of music.
    """
    groups = np.asarray(groups).reshape(-1)
    d = _pair_distances(features)
    if d.shape[0] != groups.size:
        raise D2MError(f"diversity: {d.shape[0]} feature rows for {groups.size} group labels")
    iu = np.triu_indices(groups.size, k=1)
    mask = groups[iu[0]] != groups[iu[1]]
    if not np.any(mask):
        return float("nan")
    return float(np.mean(d[iu][mask]))


def multimodality(features: np.ndarray, groups: Sequence | np.ndarray) -> float:
    """Mean feature distance between dances generated for the same music and initial pose.

    multimodality = (1/G) * sum_g mean over pairs (i, j), i < j, in group g of ||f_i - f_j||_2,
    over the G groups (one per music segment and initial pose) that hold at least two dances; each
    piece of music counts equally however many samples it has. 0 when every sample of a group is the
    same dance; NaN when no group holds two dances (e.g. real data: one dance per piece of music).
    """
    groups = np.asarray(groups).reshape(-1)
    d = _pair_distances(features)
    if d.shape[0] != groups.size:
        raise D2MError(f"multimodality: {d.shape[0]} feature rows for {groups.size} group labels")
    per_group = []
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        if idx.size < 2:
            continue
        sub = d[np.ix_(idx, idx)]
        per_group.append(sub[np.triu_indices(idx.size, k=1)].mean())
    if not per_group:
        return float("nan")
    return float(np.mean(per_group))


# --- kinetic features ---------------------------------------------------------------------------


def kinetic_features(poses: np.ndarray, fps: float) -> np.ndarray:
    """Motion description of one dance (or window): 3 numbers per joint, (3 J,) in pixel units.

    Per joint j, with v the central-difference velocity and a the central difference of v, both
    scaled to seconds by `fps`: mean v_x^2, mean v_y^2 (px^2/s^2) and mean |a| (px/s^2), stacked as
    [all v_x^2, all v_y^2, all |a|]. A static pose is all zeros; posture alone does not enter.
    """
    v = joint_velocity(poses) * float(fps)
    a = np.gradient(v, axis=0) * float(fps) if v.shape[0] >= 2 else np.zeros_like(v)
    return np.concatenate([np.mean(v[..., 0] ** 2, axis=0), np.mean(v[..., 1] ** 2, axis=0),
                           np.mean(np.linalg.norm(a, axis=-1), axis=0)])


def standardise(features: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Features scaled by the reference set's per-dimension mean and std (a zero std counts as 1)."""
    ref = np.asarray(reference, dtype=np.float64)
    std = ref.std(axis=0)
    return (np.asarray(features, dtype=np.float64) - ref.mean(axis=0)) / np.where(std > 0, std, 1.0)


# --- beats -------------------------------------------------------------------------------------


def as_frame_indices(beats: Sequence | np.ndarray, n_frames: int | None = None) -> np.ndarray:
    """Check that beats are integer frame indices (not seconds) and keep those inside the dance.

    Beats given in seconds are the classic mistake (fractional values, all crowded into the first
    few dozen frames); non-integer values are refused with an error instead of being rounded.
    """
    b = np.asarray(beats, dtype=np.float64).reshape(-1)
    if b.size and not np.allclose(b, np.round(b)):
        raise D2MError(
            "beats must be frame indices at 15 fps, got fractional values "
            f"(e.g. {b[np.argmax(np.abs(b - np.round(b)))]:.3f}); were they given in seconds?"
        )
    b = np.unique(np.round(b).astype(np.int64))
    if n_frames is not None:
        b = b[(b >= 0) & (b < n_frames)]
    return b


def _nearest_distance(points: np.ndarray, to: np.ndarray) -> np.ndarray:
    """For each of `points`, the distance in frames to the nearest of `to` (inf where `to` is empty)."""
    if to.size == 0:
        return np.full(points.size, np.inf)
    return np.min(np.abs(points[:, None].astype(np.float64) - to[None, :].astype(np.float64)), axis=1)


def _nearest_distance(points: np.ndarray, to: np.ndarray) -> np.ndarray:
    """For each of `points`, the distance in frames to the nearest of `to` (inf where `to` is empty)."""
    if to.size == 0:
        return np.full(points.size, np.inf)
    return np.min(np.abs(points[:, None].astype(np.float64) - to[None, :].astype(np.float64)), axis=1)


def _pairs(motion: Sequence, music: Sequence, name: str):
    if len(motion) != len(music):
        raise D2MError(f"{name}: {len(motion)} dances but {len(music)} beat lists")
    return [(as_frame_indices(k), as_frame_indices(m)) for k, m in zip(motion, music)]


def _align(points: np.ndarray, to: np.ndarray, sigma: float) -> float:
    if sigma <= 0:
        raise D2MError(f"beat align: sigma must be > 0 frames, got {sigma}")
    return float(np.mean(np.exp(-(_nearest_distance(points, to) ** 2) / (2.0 * sigma**2))))


def beat_align_per_dance(motion: Sequence, music: Sequence, sigma: float) -> np.ndarray:
    """The beat-align score of AIST++ and Bailando, one value per dance (over the music beats).

    BA = (1/|M|) * sum_{m in M} exp(-d_m^2 / (2 sigma^2)), d_m = distance in frames from music beat m
    to the nearest kinematic beat; a dance without kinematic beats scores 0; NaN where the music has
    no beat. Those works use 60 fps with sigma = 3 frames; at 15 fps the same 0.05 s is 0.75 frames.
    Alone it rewards a dance that stops all the time: read it with `beat_align_motion_per_dance`.
    """
    out = [float("nan") if m.size == 0 else (_align(m, k, sigma) if k.size else 0.0)
           for k, m in _pairs(motion, music, "beat_align")]
    return np.asarray(out, dtype=np.float64)


def beat_align_motion_per_dance(motion: Sequence, music: Sequence, sigma: float) -> np.ndarray:
    """Beat align the other way: mean over the kinematic beats of exp(-d^2 / 2 sigma^2), d to the
    nearest music beat. A dance without kinematic beats scores 0 (not NaN); NaN where the music has
    no beat. A dance that stops on every frame scores low here, however many music beats it covers."""
    out = [float("nan") if m.size == 0 else (_align(k, m, sigma) if k.size else 0.0)
           for k, m in _pairs(motion, music, "beat_align_motion")]
    return np.asarray(out, dtype=np.float64)


def beat_f1_per_dance(motion: Sequence, music: Sequence, fps: float, tolerance: int = 1) -> np.ndarray:
    """Beat F-measure of the kinematic beats against the music beats, one value per dance.

    `mir_eval.beat.f_measure` with a window of `tolerance` frames: beats are frame indices, so the
    window is passed as (tolerance + 0.5) / fps seconds, which matches exactly the pairs at most
    `tolerance` frames apart (a window of exactly tolerance / fps would hang on rounding). Each
    kinematic beat matches at most one music beat. No kinematic beat: 0; music without beats: NaN.
    """
    import mir_eval

    window = (int(tolerance) + 0.5) / float(fps)
    out = []
    for k, m in _pairs(motion, music, "beat_f1"):
        if m.size == 0:
            out.append(float("nan"))
        elif k.size == 0:
            out.append(0.0)
        else:
            out.append(float(mir_eval.beat.f_measure(m / float(fps), k / float(fps), f_measure_threshold=window)))
    return np.asarray(out, dtype=np.float64)


# --- motion statistics --------------------------------------------------------------------------


def beat_speed_ratio(poses: np.ndarray, music: Sequence | np.ndarray) -> float:
    """Mean joint speed on the music-beat frames over the mean joint speed of the whole dance.

    Below 1: the dance slows down on the beats (as a dancer who hits them does); 1: no relation;
    NaN when the dance does not move or the music has no beat inside it.
    """
    speed = motion_speed(poses)
    beats = as_frame_indices(music, speed.size)
    mean = float(speed.mean()) if speed.size else 0.0
    if beats.size == 0 or mean <= 0:
        return float("nan")
    return float(speed[beats].mean() / mean)


def bone_length_error(poses: np.ndarray, reference_lengths: np.ndarray) -> float:
    """Mean relative deviation of the bone lengths from a dancer's lengths (B,), over frames and bones.

    mean_{t,b} |L_tb - R_b| / R_b; 0 for a rigid skeleton of the right size. The reference is the
    median length of each bone over the real dance of the same clip (the same dancer).
    """
    ref = np.asarray(reference_lengths, dtype=np.float64).reshape(-1)
    lengths = bone_lengths(poses)
    if lengths.shape[1] != ref.size:
        raise D2MError(f"bone_length_error: {lengths.shape[1]} bones but {ref.size} reference lengths")
    return float(np.mean(np.abs(lengths - ref) / np.where(ref > 0, ref, 1.0)))


def seam_ratio(poses: np.ndarray, unit_frames: int) -> float:
    """Mean joint step across unit boundaries over the mean joint step inside units.

    A step is the mean over joints of ||pose[t] - pose[t-1]||; boundaries are the steps into frames
    unit_frames, 2 unit_frames, ... About 1 for a continuous dance, far above 1 when consecutive
    units jump. NaN when the dance has no boundary or does not move inside its units.
    """
    p = np.asarray(poses, dtype=np.float64).reshape(len(poses), -1, 2)
    if unit_frames < 2 or len(p) <= unit_frames:
        return float("nan")
    step = np.linalg.norm(np.diff(p, axis=0), axis=-1).mean(axis=1)  # step[t-1]: frame t-1 -> t
    into = np.arange(unit_frames, len(p), unit_frames) - 1
    inside = np.setdiff1d(np.arange(step.size), into)
    within = float(step[inside].mean()) if inside.size else 0.0
    if within <= 0:
        return float("nan")
    return float(step[into].mean() / within)
