"""The score of one synthetic clip: tempo, meter, key, beat grid and the sections of tell-tale music.

Everything random about a clip is drawn here (from the clip's own generator), so that the music and
the dance read the same beats and the same sections.

Sections and the `difficulty` knob. Each style has three tell-tale layers (see music.py). A clip
alternates tell-tale sections, where two or three of its style's layers play, with neutral
sections, where they all drop out and only the shared, style-neutral material remains (a soft pad,
a woodblock pulse on every beat, background noise). Neutral material is drawn from the same
distribution for every style, so inside a neutral section only the tempo hints at the style, and
the tempo ranges overlap. Section lengths, in seconds, per difficulty:

| difficulty | neutral   | tell-tale | share of time neutral |
|------------|-----------|-----------|-----------------------|
| easy       | 1.5 - 3.0 | 5.0 - 9.0 | about 0.2             |
| medium     | 2.5 - 5.5 | 2.5 - 5.0 | about 0.5             |
| hard       | 3.5 - 6.5 | 1.5 - 3.5 | about 0.7             |

Medium is the default: a 2 s window lies wholly in neutral material a good part of the time (only
tempo can help there), while a neutral stretch never lasts longer than 5.5 s, so any 10 s window
holds at least 2.5 s of tell-tale material. Boundaries are snapped to beats, as music would be.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from common.errors import D2MError
from datamodules.styles import KNOWN_STYLES

STYLES: tuple[str, ...] = KNOWN_STYLES

# beats per minute; the ranges overlap so that tempo alone cannot tell the styles apart
TEMPO_RANGE: dict[str, tuple[float, float]] = {
    "ballet": (80.0, 108.0),
    "hiphop": (86.0, 106.0),
    "zumba": (102.0, 130.0),
}

TELLTALE_LAYERS: dict[str, tuple[str, ...]] = {
    "ballet": ("melody", "strings", "harp"),
    "zumba": ("kick4", "latin_perc", "stabs"),
    "hiphop": ("backbeat", "swing_hats", "sub_bass"),
}

DIFFICULTY: dict[str, dict[str, tuple[float, float]]] = {
    "easy": {"neutral": (1.5, 3.0), "telltale": (5.0, 9.0)},
    "medium": {"neutral": (2.5, 5.5), "telltale": (2.5, 5.0)},
    "hard": {"neutral": (3.5, 6.5), "telltale": (1.5, 3.5)},
}

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
PROGRESSIONS = ((0, 4, 5, 3), (0, 5, 3, 4), (0, 3, 4, 0), (5, 3, 0, 4), (0, 3, 0, 4))


@dataclass
class Section:
    start: float  # seconds
    end: float
    layers: tuple[str, ...]  # tell-tale layers playing; empty in a neutral section

    @property
    def neutral(self) -> bool:
        return not self.layers


@dataclass
class MusicPlan:
    style: str
    seconds: float
    tempo: float  # bpm
    meter: int  # beats per bar
    first_beat: float  # seconds
    beat_times: np.ndarray  # every beat from one before the clip to one after it (seconds)
    key_root: int  # MIDI note of the tonic, octave 4
    scale: tuple[int, ...]
    progression: tuple[int, ...]  # scale degree of each bar's chord, cycled
    sections: list[Section]
    swing: float  # position of the off-beat eighth within the beat (0.5 straight)
    gains: dict[str, float] = field(default_factory=dict)  # per layer, linear
    noise_level: float = 0.0

    @property
    def period(self) -> float:
        return 60.0 / self.tempo

    def beats_in_clip(self) -> np.ndarray:
        return self.beat_times[(self.beat_times >= 0) & (self.beat_times < self.seconds)]

    def chord(self, beat_index: int, beats_per_chord: int) -> list[int]:
        """MIDI notes (root position triad, octave 4) of the chord sounding at a beat."""
        degree = self.progression[(beat_index // beats_per_chord) % len(self.progression)]
        notes = []
        for step in (0, 2, 4):
            d = degree + step
            notes.append(self.key_root + self.scale[d % 7] + 12 * (d // 7))
        return notes


def plan_clip(style: str, seconds: float, difficulty: str, rng: np.random.Generator) -> MusicPlan:
    if style not in TEMPO_RANGE:
        raise D2MError(f"unknown synthetic style '{style}'; known: {', '.join(STYLES)}")
    if difficulty not in DIFFICULTY:
        raise D2MError(f"unknown synth.difficulty '{difficulty}'; known: {', '.join(DIFFICULTY)}")
    tempo = float(rng.uniform(*TEMPO_RANGE[style]))
    period = 60.0 / tempo
    meter = int(rng.choice([3, 4])) if style == "ballet" else 4
    first_beat = float(rng.uniform(0.1, 0.1 + period))
    n_before = int(np.ceil(first_beat / period)) + 1
    n_total = n_before + int(np.ceil(seconds / period)) + 2
    beat_times = first_beat + period * (np.arange(n_total) - n_before)
    minor = bool(rng.random() < 0.5)
    plan = MusicPlan(
        style=style, seconds=float(seconds), tempo=tempo, meter=meter, first_beat=first_beat,
        beat_times=beat_times, key_root=int(rng.integers(55, 67)), scale=MINOR if minor else MAJOR,
        progression=PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))],
        sections=_sections(style, seconds, difficulty, beat_times, rng),
        swing=float(rng.uniform(0.6, 0.68)) if style == "hiphop" else 0.5,
    )
    plan.gains = {name: float(10 ** (rng.uniform(-3, 3) / 20)) for name in TELLTALE_LAYERS[style]}
    for name in ("pad", "tick"):
        plan.gains[name] = float(10 ** (rng.uniform(-3, 3) / 20))
    plan.noise_level = float(10 ** (rng.uniform(-52, -38) / 20))
    return plan


def _sections(style: str, seconds: float, difficulty: str, beat_times: np.ndarray,
              rng: np.random.Generator) -> list[Section]:
    lengths = DIFFICULTY[difficulty]
    share = np.mean(lengths["neutral"]) / (np.mean(lengths["neutral"]) + np.mean(lengths["telltale"]))
    neutral = bool(rng.random() < share)
    layers_all = TELLTALE_LAYERS[style]
    sections: list[Section] = []
    t = 0.0
    while t < seconds:
        lo, hi = lengths["neutral" if neutral else "telltale"]
        end = _snap(t + float(rng.uniform(lo, hi)), beat_times, lo, hi, t)
        if neutral:
            layers: tuple[str, ...] = ()
        elif difficulty == "easy" or rng.random() < 0.5:
            layers = layers_all
        else:
            drop = int(rng.integers(len(layers_all)))
            layers = tuple(name for i, name in enumerate(layers_all) if i != drop)
        sections.append(Section(t, min(end, seconds), layers))
        t = end
        neutral = not neutral
    return sections


def _snap(end: float, beat_times: np.ndarray, lo: float, hi: float, start: float) -> float:
    """Move a section's end to the nearest beat that keeps its length within [lo, hi]."""
    ok = beat_times[(beat_times - start >= lo) & (beat_times - start <= hi)]
    if ok.size == 0:
        return end
    return float(ok[np.argmin(np.abs(ok - end))])
