"""The movement repertoire of each style, as key poses that fall on successive beats.

A move is a short cycle of key poses (one per beat), each a few joint angles that differ from the
style's resting stance (body.PARAMS; radians, pixels for dx and lift). The choreographer (dance.py)
picks moves bar by bar and scales them per performance. The repertoires follow DESIGN.md:
- ballet: port de bras, plie, releve, a side extension (arabesque seen from the front), balance sway;
  large, rounded arm shapes, turned-out legs.
- zumba: step-touch, hip sway, arm pumps, jumping jacks; big travelling steps and bent arms.
- hiphop: bounce, arm wave, pops, crossover steps; bent knees, compact arms, sharp accents.
"""

from __future__ import annotations

import numpy as np

from datamodules.synth.body import PARAMS, P

Pose = dict[str, float]


def mirror(pose: Pose) -> Pose:
    """Swap right and left, and flip sideways quantities (lean, head tilt, dx)."""
    out: Pose = {}
    for key, value in pose.items():
        if key.startswith("r_"):
            out["l_" + key[2:]] = value
        elif key.startswith("l_"):
            out["r_" + key[2:]] = value
        elif key in ("torso", "head", "dx"):
            out[key] = -value
        else:
            out[key] = value
    return out


def arms(sh: float, el: float) -> Pose:
    return {"r_sh": sh, "r_el": el, "l_sh": sh, "l_el": el}


def legs(hip: float, knee: float) -> Pose:
    return {"r_hip": hip, "r_knee": knee, "l_hip": hip, "l_knee": knee}


BASE: dict[str, Pose] = {
    "ballet": {**arms(0.3, -0.5), **legs(0.1, 0.0)},
    "zumba": {**arms(0.45, -1.4), **legs(0.14, 0.15)},
    "hiphop": {**arms(0.4, -1.2), **legs(0.16, 0.3)},
}

_step_right = {"dx": -24.0, "r_hip": 0.3, "l_hip": 0.02, "r_knee": 0.25, "l_knee": 0.35, "torso": 0.07,
               **{"r_sh": 0.8, "r_el": -1.9, "l_sh": 0.5, "l_el": -1.6}}
_pump_right = {"r_sh": 2.8, "r_el": -0.1, "l_sh": 0.6, "l_el": -1.8, "r_knee": 0.35, "l_knee": 0.1}
_extension = {"r_hip": 1.05, "r_knee": 0.0, "l_hip": 0.05, "torso": 0.16, "r_sh": 1.5, "r_el": -0.2,
              "l_sh": 2.6, "l_el": -0.5, "head": -0.1}
_pop_right = {"torso": 0.1, "r_sh": 1.1, "r_el": -2.2, "l_sh": 0.3, "l_el": -0.6, "head": 0.12}
_wave_a = {"r_sh": 1.55, "r_el": 0.5, "l_sh": 1.55, "l_el": -0.4, "head": 0.12, "torso": 0.04}
_cross_right = {"r_hip": -0.22, "l_hip": 0.12, "r_knee": 0.35, "l_knee": 0.35, "dx": 16.0, "torso": -0.05,
                "r_sh": 0.9, "r_el": -1.5, "l_sh": 0.3, "l_el": -1.0}

MOVES: dict[str, dict[str, list[Pose]]] = {
    "ballet": {
        "port_de_bras": [arms(0.9, -1.2), arms(2.65, -0.6), arms(1.45, -0.15), arms(0.3, -0.5)],
        "plie": [{**arms(1.4, -0.2), **legs(0.42, 0.85)}, {**arms(1.45, -0.15), **legs(0.1, 0.0)}],
        "releve": [{**arms(2.7, -0.5), "lift": 16.0}, {**arms(1.4, -0.2), "lift": 0.0}],
        "extension": [_extension, {**arms(1.4, -0.2)}, mirror(_extension), {**arms(1.4, -0.2)}],
        "balance": [{"torso": 0.12, "dx": 12.0, "r_sh": 1.4, "l_sh": 2.6, "l_el": -0.5, "r_el": -0.2},
                    {"torso": -0.12, "dx": -12.0, "l_sh": 1.4, "r_sh": 2.6, "r_el": -0.5, "l_el": -0.2}],
    },
    "zumba": {
        "step_touch": [_step_right, mirror(_step_right)],
        "hip_sway": [{"torso": 0.16, "dx": 10.0, **arms(0.65, -1.7), "r_knee": 0.35, "l_knee": 0.05},
                     {"torso": -0.16, "dx": -10.0, **arms(0.65, -1.7), "l_knee": 0.35, "r_knee": 0.05}],
        "arm_pumps": [_pump_right, mirror(_pump_right)],
        "jumping_jack": [{**legs(0.38, 0.0), **arms(2.6, -0.2), "lift": 18.0},
                         {**legs(0.08, 0.25), **arms(0.35, -0.4), "lift": 0.0}],
    },
    "hiphop": {
        "bounce": [{**legs(0.3, 0.7), "r_sh": 0.55, "l_sh": 0.3, "head": 0.1},
                   {**legs(0.16, 0.15), "r_sh": 0.3, "l_sh": 0.55, "head": -0.05}],
        "arm_wave": [_wave_a, {**arms(1.5, 0.0), "head": 0.0}, mirror(_wave_a), {**arms(1.5, 0.0)}],
        "pops": [_pop_right, {**arms(0.4, -1.2)}, mirror(_pop_right), {**arms(0.4, -1.2), "torso": 0.0}],
        "crossover": [_cross_right, {**legs(0.2, 0.4), "dx": 0.0}, mirror(_cross_right), {**legs(0.2, 0.4)}],
    },
}


def to_vector(pose: Pose, base: Pose) -> np.ndarray:
    """A key pose as a full parameter vector: the style's stance with the pose's entries over it."""
    vec = np.zeros(len(PARAMS))
    for key, value in {**base, **pose}.items():
        vec[P[key]] = value
    return vec
