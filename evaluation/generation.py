"""Dance generation from music of any length with a trained `CompositionGAN` (DESIGN.md section 3).

The music is cut into windows of L units (L * T frames, T = 32); per window the frozen extractor's
style feature and fresh noise give z_dance, the dance decoder turns it into L movement codes, and
the pose decoder turns each code into a unit of poses. Units chain: each starts from the last pose
of the one before (encoded to z_init by the initial-pose encoder's mean), so the dance is continuous
across units and windows. A unit that barely moves (a known failure of GAN-made codes) is redrawn a
bounded number of times. With `blend_frames` > 0 each unit's first frames are moved, by an offset
that fades out linearly over that many frames, so that the unit carries on from where the one before
stopped at that unit's speed: the initial-pose VAE rebuilds a pose only to a few pixels, and without
the blend that error is a jump at every seam (`seam_ratio`). The final, partial window is generated
whole and cropped, so the dance has exactly as many frames as the music.

Beat warping is a separate pure function on poses: music beats are frame indices at 15 fps, never
seconds (the released demo mixed the two up).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.interpolate import PchipInterpolator
from tqdm.auto import tqdm

from common.errors import D2MError
from datamodules.motion import kinematic_beats

__all__ = [
    "MAX_RETRIES",
    "MOTION_THRESHOLD_PX",
    "blend_seam",
    "generate_dance",
    "kinematic_beats",
    "motion_px",
    "warp_to_beats",
]

MOTION_THRESHOLD_PX = 0.5  # mean joint speed (px per frame) below which a unit counts as standing still
MAX_RETRIES = 5  # redraws of a still unit before the most moving attempt is kept


def motion_px(poses: torch.Tensor, pose_std: torch.Tensor) -> torch.Tensor:
    """Mean joint speed in pixels per frame of normalised units (N, T, P) -> (N,)."""
    step = (poses[:, 1:] - poses[:, :-1]) * pose_std
    return step.reshape(*step.shape[:-1], -1, 2).norm(dim=-1).mean(dim=(1, 2))


def blend_seam(previous: torch.Tensor, unit: torch.Tensor, frames: int) -> torch.Tensor:
    """`unit` (N, T, P) moved to carry on from `previous` (N, T' >= 2, P), the offset fading out over `frames`.

    The first frame of `unit` is put one step (the last step of `previous`) beyond the last frame of
    `previous`; frame k is moved by (1 - k / frames) of that offset, and frames from `frames` on are
    left as decoded, so the unit's last pose (the next unit's start) does not change when frames < T.
    """
    if frames <= 0:
        return unit
    offset = (2 * previous[:, -1] - previous[:, -2]) - unit[:, 0]  # one more step of the same size, minus the start
    fade = (1.0 - torch.arange(unit.shape[1], dtype=unit.dtype, device=unit.device) / frames).clamp(min=0.0)
    return unit + offset.unsqueeze(1) * fade.view(1, -1, 1)


def _randn(shape, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """Normal noise drawn on the generator's device (a CPU generator stays reproducible on GPU)."""
    if generator is None:
        return torch.randn(shape, device=like.device, dtype=like.dtype)
    return torch.randn(shape, generator=generator, device=generator.device).to(like)


def _draw_codes(model, style: torch.Tensor, units: int, generator) -> torch.Tensor:
    """Sampled movement codes (N, L, M) for style features (N, S): z_dance from the music, then decoded."""
    mean, logvar = model.audstyle_enc(style, generator=generator)
    z = mean + _randn(mean.shape, generator, mean) * torch.exp(0.5 * logvar)
    m_mean, m_logvar = model.dance_dec(z, units)
    codes = m_mean + _randn(m_mean.shape, generator, m_mean) * torch.exp(0.5 * m_logvar)
    return codes.reshape(style.shape[0], units, -1)


@torch.no_grad()
def generate_dance(
    model,
    features: torch.Tensor,
    n_frames: int | None = None,
    *,
    samples: int = 1,
    init_pose: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    motion_threshold: float = MOTION_THRESHOLD_PX,
    max_retries: int = MAX_RETRIES,
    blend_frames: int = 0,
    progress: bool = False,
) -> torch.Tensor:
    """Normalised poses (samples, n_frames, P) for normalised music features (T, F) at the pose frame rate.

    `model` is a trained `CompositionGAN` (a `CompositionModule`'s `.model`); it is left as it was found.
    `n_frames` defaults to T (one pose per feature frame). `init_pose` (P,) is the normalised first
    pose shared by all samples; when None one is drawn from N(0, I) in z_init space and decoded, also
    shared, so the samples differ only by the model's own randomness (multimodality). `generator`
    makes the dance reproducible. A unit whose mean joint speed is below `motion_threshold` px/frame
    is redrawn up to `max_retries` times; the most moving attempt is kept. `blend_frames` > 0 blends
    every seam (`blend_seam`).
    """
    if features.dim() != 2:
        raise D2MError(f"generate_dance needs features of shape (T, F), got {tuple(features.shape)}")
    total = int(features.shape[0] if n_frames is None else n_frames)
    if total < 1 or features.shape[0] < 1:
        raise D2MError("the music is empty: no feature frames to generate a dance for")
    if total > features.shape[0]:
        raise D2MError(f"asked for {total} frames but the music has only {features.shape[0]} feature frames")
    if samples < 1:
        raise D2MError(f"samples must be >= 1, got {samples}")
    if blend_frames < 0:
        raise D2MError(f"the seam blend must be 0 (off) or a number of frames, got {blend_frames}")
    if features.shape[1] != model.feature_dim:
        raise D2MError(f"the model expects {model.feature_dim} features per frame, got {features.shape[1]}")

    was_training = model.training
    model.eval()
    try:
        device = model.pose_std.device
        features = features.to(device=device, dtype=torch.float32)
        units, unit_frames = model.sequence_units, model.unit_frames
        window = units * unit_frames
        pose_std = model.pose_std

        if init_pose is None:
            z0 = _randn((1, model.decomposition_cfg.init_dim), generator, features)
            first = model.initp_dec(z0)
        else:
            first = torch.as_tensor(init_pose, dtype=torch.float32, device=device).reshape(1, -1)
            if first.shape[1] != model.pose_dim:
                raise D2MError(f"init_pose must have {model.pose_dim} numbers, got {first.shape[1]}")
        z_init = model.initp_enc(first)[0].expand(samples, -1)

        pieces: list[torch.Tensor] = []
        n_windows = math.ceil(total / window)
        for w in tqdm(range(n_windows), desc="generating", unit="window", disable=not progress):
            start = w * window
            music = features[start:min(start + window, features.shape[0])]
            style = model.style_feature(music.unsqueeze(0)).expand(samples, -1)
            codes = _draw_codes(model, style, units, generator)
            for j in range(units):
                if start + j * unit_frames >= total:
                    break  # the rest of the last window would be cropped away
                poses = model.stdp_dec(z_init, codes[:, j], unit_frames)
                moved = motion_px(poses, pose_std)
                for _ in range(max(0, int(max_retries))):
                    still = moved < motion_threshold
                    if not bool(still.any()):
                        break
                    idx = still.nonzero().squeeze(1)
                    again = _draw_codes(model, style[idx], units, generator)[:, j]
                    retry = model.stdp_dec(z_init[idx], again, unit_frames)
                    retry_moved = motion_px(retry, pose_std)
                    better = retry_moved > moved[idx]
                    poses[idx[better]] = retry[better]
                    moved[idx[better]] = retry_moved[better]
                if pieces and blend_frames > 0:
                    poses = blend_seam(pieces[-1], poses, blend_frames)
                pieces.append(poses)
                z_init = model.initp_enc(poses[:, -1])[0]
        dance = torch.cat(pieces, dim=1)[:, :total]
        return dance.float().cpu()
    finally:
        model.train(was_training)


# -- beat warping ---------------------------------------------------------------------------------------
def _as_frame_indices(beats, n_frames: int) -> np.ndarray:
    """Music beats as sorted integer frame indices; seconds (non-integer values) are refused."""
    b = np.asarray(beats, dtype=np.float64).reshape(-1)
    if b.size and not np.all(np.isfinite(b)):
        raise D2MError("music beats contain NaN or infinite values")
    if b.size and np.any(np.abs(b - np.round(b)) > 1e-6):
        raise D2MError("music beats must be frame indices at 15 fps (integers), got fractional values: "
                       "were they given in seconds? multiply by the frame rate first")
    if b.size and b.min() < 0:
        raise D2MError("music beats must be non-negative frame indices")
    b = np.unique(np.round(b).astype(np.int64))
    return b[b < n_frames]


def warp_to_beats(poses, music_beats, unit_frames: int = 32, max_shift: int | None = None):
    """Time-warp a dance so its kinematic beats land on the nearest music beats; same shape out.

    `poses` is (T, P) in pixels (numpy or torch; beats are found by `datamodules.motion`); `music_beats`
    are FRAME INDICES at the pose frame rate (15 fps),
    not seconds. Within each unit, every kinematic beat is paired, in order, with the nearest unused
    music beat at most `max_shift` frames away (default: an eighth of a unit, half the beat period
    of the original's beat-normalised units, whose beats are 8 frames apart). The pairs, with the
    first and last frames fixed, define one monotone, smooth (PCHIP) time map over the whole dance,
    so motion stays continuous across units and a stop stays the slowest frame around its new beat.
    """
    is_torch = isinstance(poses, torch.Tensor)
    p = poses.detach().cpu().numpy() if is_torch else np.asarray(poses)
    n = len(p)
    beats = _as_frame_indices(music_beats, n)
    if n < 3:
        return poses
    shift = max(1, unit_frames // 8) if max_shift is None else int(max_shift)
    kin = kinematic_beats(np.asarray(p, dtype=np.float64).reshape(n, -1))
    out_anchor, src_anchor = [0], [0]
    for s in range(0, n, unit_frames):
        e = min(s + unit_frames, n)
        for k in kin[(kin >= s) & (kin < e)]:
            free = beats[(beats > out_anchor[-1]) & (beats >= s - shift) & (beats < min(e + shift, n - 1))]
            if not free.size or k <= src_anchor[-1] or k >= n - 1:
                continue
            m = int(free[np.argmin(np.abs(free - k))])
            if abs(m - int(k)) <= shift:
                out_anchor.append(m)
                src_anchor.append(int(k))
    out_anchor.append(n - 1)
    src_anchor.append(n - 1)
    t = np.arange(n, dtype=np.float64)
    src_times = PchipInterpolator(out_anchor, src_anchor)(t).clip(0, n - 1)
    lo = np.floor(src_times).astype(np.int64).clip(0, n - 1)
    hi = np.minimum(lo + 1, n - 1)
    frac = (src_times - lo).reshape(-1, *([1] * (p.ndim - 1)))
    warped = ((1.0 - frac) * p[lo] + frac * p[hi]).astype(p.dtype, copy=False)
    return torch.from_numpy(warped).to(poses) if is_torch else warped
