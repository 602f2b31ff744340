"""The paper's dance metrics as small pure functions (DESIGN.md section 4).

Every function takes plain arrays and returns a float (or an array of frame indices), so that the
same numbers come out whether a metric is called from a test, from `evaluation.evaluate` or from a
notebook, and none depends on the order of the dances it is given. Frames are at 15 fps; music beats
are frame indices at that rate, never seconds.

Conventions: `features` are (N, D) arrays of the dance-style classifier's penultimate features;
`groups` are (N,) labels saying which music (and initial pose) a dance was generated for; a pose
sequence is (T, 14, 2) or (T, 28) in pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import linalg
from scipy.ndimage import gaussian_filter1d

from datamodules.errors import D2MError

__all__ = [
    "style_consistency",
    "frechet_distance",
    "diversity",
    "multimodality",
    "motion_speed",
    "kinematic_beats",
    "as_frame_indices",
    "beat_coverage",
    "beat_hit_rate",
    "beat_align_score",
]


# --- classifier-based metrics ------------------------------------------------------------------


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


# --- kinematic and music beats ----------------------------------------------------------------


def _as_joints(poses: np.ndarray) -> np.ndarray:
    p = np.asarray(poses, dtype=np.float64)
    if p.ndim == 2 and p.shape[1] % 2 == 0:
        p = p.reshape(p.shape[0], -1, 2)
    if p.ndim != 3 or p.shape[2] != 2:
        raise D2MError(f"poses must be (T, J, 2) or (T, 2J), got shape {np.shape(poses)}")
    return p


def motion_speed(poses: np.ndarray, smoothing: float = 0.0) -> np.ndarray:
    """Motion magnitude per frame: mean joint speed from a central difference, optionally smoothed.

    speed[t] = (1/J) * sum_j ||(pose[t+1, j] - pose[t-1, j]) / 2||_2 for 0 < t < T-1, with one-sided
    differences at the two ends; then, if `smoothing` > 0, a Gaussian filter with that sigma in
    frames. The central difference puts a stop reached at frame b on frame b (a forward difference
    would put it on b-1, a whole beat-align sigma away at 15 fps).
    """
    p = _as_joints(poses)
    if p.shape[0] < 2:
        return np.zeros(p.shape[0])
    vel = np.gradient(p, axis=0)
    speed = np.linalg.norm(vel, axis=2).mean(axis=1)
    if smoothing > 0:
        speed = gaussian_filter1d(speed, sigma=float(smoothing), mode="nearest")
    return speed


def _local_minima(s: np.ndarray) -> list[int]:
    """Middles of the runs of equal values that are strictly lower than both neighbouring frames."""
    minima = []
    t, n = 0, s.size
    while t < n:
        end = t
        while end + 1 < n and s[end + 1] == s[t]:
            end += 1
        if t > 0 and end < n - 1 and s[t - 1] > s[t] and s[end + 1] > s[t]:
            minima.append((t + end) // 2)
        t = end + 1
    return minima


def kinematic_beats(poses: np.ndarray, smoothing: float = 0.0) -> np.ndarray:
    """Frame indices of the kinematic beats: the local minima of the motion speed.

    A local minimum is a run of equal speeds strictly lower than the frames on both sides of it; its
    beat is the run's middle frame (a held pose counts once, at the middle of the hold). Runs that
    touch the first or last frame are not beats: the motion before or after them is unknown.

    With `smoothing` > 0 the minima are found on the Gaussian-smoothed speed (sigma = `smoothing`
    frames), which drops the shallow minima of jitter, and each is then moved to the lowest raw speed
    within ceil(smoothing) frames of it. Smoothing alone pulls a stop towards its slower side by a
    frame when the motion into and out of it differ, and at 15 fps one frame is more than the
    beat-align sigma; the raw speed keeps the frame where the motion actually stops.
    """
    raw = motion_speed(poses, 0.0)
    if smoothing <= 0:
        return np.asarray(_local_minima(raw), dtype=np.int64)
    smooth = gaussian_filter1d(raw, sigma=float(smoothing), mode="nearest") if raw.size else raw
    radius = int(np.ceil(smoothing))
    beats = set()
    for m in _local_minima(smooth):
        lo, hi = max(m - radius, 1), min(m + radius, raw.size - 2)
        window = np.arange(lo, hi + 1)
        best = window[raw[window] == raw[window].min()]
        beats.add(int(best[np.argmin(np.abs(best - m))]))
    return np.asarray(sorted(beats), dtype=np.int64)


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


def beat_coverage(kinematic: Sequence[np.ndarray], music: Sequence[np.ndarray]) -> float:
    """Kinematic beats per music beat, pooled over dances.

    beat_coverage = sum_k |kinematic beats of dance k| / sum_k |music beats under dance k|.
    `kinematic[k]` and `music[k]` are the frame indices of dance k and of its music. NaN when the
    music has no beats at all.
    """
    if len(kinematic) != len(music):
        raise D2MError(f"beat_coverage: {len(kinematic)} dances but {len(music)} beat lists")
    n_music = sum(len(as_frame_indices(m)) for m in music)
    if n_music == 0:
        return float("nan")
    return float(sum(len(as_frame_indices(k)) for k in kinematic) / n_music)


def beat_hit_rate(kinematic: Sequence[np.ndarray], music: Sequence[np.ndarray], tolerance: int) -> float:
    """Fraction of kinematic beats that land on a music beat, pooled over dances.

    beat_hit_rate = sum_k |{b in kinematic_k : min_m |b - m| <= tolerance, m in music_k}|
                    / sum_k |kinematic_k|, distances and `tolerance` in frames.
    NaN when no dance has a kinematic beat.
    """
    if len(kinematic) != len(music):
        raise D2MError(f"beat_hit_rate: {len(kinematic)} dances but {len(music)} beat lists")
    hits = total = 0
    for k, m in zip(kinematic, music):
        k, m = as_frame_indices(k), as_frame_indices(m)
        hits += int(np.sum(_nearest_distance(k, m) <= tolerance))
        total += k.size
    if total == 0:
        return float("nan")
    return float(hits / total)


def beat_align_score(kinematic: Sequence[np.ndarray], music: Sequence[np.ndarray], sigma: float) -> float:
    """The beat-align score of AIST++ and Bailando, averaged over dances.

    per dance: BA = (1/|M|) * sum_{m in M} exp(-d_m^2 / (2 sigma^2)), d_m = distance in frames from
    music beat m to the nearest kinematic beat (a dance without kinematic beats scores 0); the result
    is the mean BA over the dances whose music has beats (NaN if none has). Those works use 60 fps
    with sigma = 3 frames; at 15 fps the same 0.05 s is sigma = 0.75 frames (the config default), so
    a one-frame miss already scores exp(-0.89) = 0.41.
    """
    if len(kinematic) != len(music):
        raise D2MError(f"beat_align_score: {len(kinematic)} dances but {len(music)} beat lists")
    if sigma <= 0:
        raise D2MError(f"beat_align_score: sigma must be > 0 frames, got {sigma}")
    scores = []
    for k, m in zip(kinematic, music):
        k, m = as_frame_indices(k), as_frame_indices(m)
        if m.size == 0:
            continue
        d = _nearest_distance(m, k)
        scores.append(float(np.mean(np.exp(-(d**2) / (2.0 * sigma**2)))))
    if not scores:
        return float("nan")
    return float(np.mean(scores))
