"""Choreography: key poses on the music's beats, eased in between, through forward kinematics.

Each beat of the plan gets a key pose from the style's repertoire (moves.py); moves are chosen bar
by bar (a move often carries on into the next bar, as dancers repeat a figure) and scaled by a
per-phrase amplitude and a dancer's personal stance. Between two beats every angle follows the same
cosine ease, s(u) = (1 - cos(pi u)) / 2, whose speed is zero at both ends: the body comes to rest
on each beat, so the kinematic beats (local minima of motion speed) fall on the music's beats.
Consecutive key poses always differ, otherwise the body would rest for a whole beat and the minimum
would smear.
"""

from __future__ import annotations

import numpy as np

from datamodules.synth.body import PARAMS, Body, P, forward_kinematics
from datamodules.synth.moves import BASE, MOVES, to_vector
from datamodules.synth.plan import MusicPlan

ANGLES = [P[name] for name in PARAMS if name not in ("dx", "lift")]
MIN_STEP = 0.25  # radians (norm over all angles) between consecutive key poses


def key_poses(plan: MusicPlan, rng: np.random.Generator) -> np.ndarray:
    """One parameter vector per entry of plan.beat_times."""
    moves = MOVES[plan.style]
    base = BASE[plan.style]
    stance = to_vector({}, base)
    stance[ANGLES] += rng.normal(0.0, 0.05, len(ANGLES))  # the dancer's personal stance
    names = sorted(moves)
    n = plan.beat_times.size
    keys = np.zeros((n, len(PARAMS)))
    move, step, amp = None, 0, 1.0
    for k in range(n):
        if k % plan.meter == 0 and (move is None or rng.random() > 0.6):
            move, step = names[int(rng.integers(len(names)))], 0
            amp = float(rng.uniform(0.7, 1.15))
        target = to_vector(moves[move][step % len(moves[move])], base)
        step += 1
        key = stance + amp * (target - to_vector({}, base))
        key[ANGLES] += rng.normal(0.0, 0.03, len(ANGLES))
        key[P["dx"]] += rng.normal(0.0, 2.0)
        key[P["lift"]] = max(0.0, key[P["lift"]])
        if k and np.linalg.norm((key - keys[k - 1])[ANGLES]) < MIN_STEP:
            arm = P["r_sh"] if rng.random() < 0.5 else P["l_sh"]
            key[arm] += MIN_STEP if key[arm] < 1.5 else -MIN_STEP
        keys[k] = key
    return keys


def ease(times: np.ndarray, beat_times: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Parameters at `times`: cosine ease from each beat's key pose to the next."""
    k = np.clip(np.searchsorted(beat_times, times, side="right") - 1, 0, beat_times.size - 2)
    u = (times - beat_times[k]) / (beat_times[k + 1] - beat_times[k])
    s = (1.0 - np.cos(np.pi * np.clip(u, 0.0, 1.0))) / 2.0
    return keys[k] + s[:, None] * (keys[k + 1] - keys[k])


def choreograph(plan: MusicPlan, n_frames: int, fps: int,
                rng: np.random.Generator) -> tuple[np.ndarray, Body]:
    """(n_frames, 14, 2) float32 pixel poses dancing to the plan's beats, and the dancer's body."""
    body = Body.random(rng)
    keys = key_poses(plan, rng)
    params = ease(np.arange(n_frames) / fps, plan.beat_times, keys)
    return forward_kinematics(params, body), body
