"""Render a clip's music from its plan: the style's tell-tale layers plus shared neutral material.

Tell-tale layers (each switched on only in the sections that name it, with short fades):
- ballet: a legato violin-like melody with vibrato, sustained string chords, a harp arpeggio on the
  beats; no drums. Triple or quadruple meter (the plan decides).
- zumba: a four-on-the-floor kick; latin percussion (congas, a son clave, a sixteenth-note shaker);
  short bright sawtooth stabs off the beat.
- hiphop: a boom-bap kick with the snare on the backbeat (beats 2 and 4); swung eighth-note hats;
  a sub bass on the chord roots.
Neutral material, the same distribution for every style and present throughout: a soft sine pad
whose chord changes every four beats whatever the meter, a woodblock on every beat with no accent
pattern (it keeps the beat audible to a beat tracker in neutral sections, for every style alike), and
background noise. Key, timbre knobs, layer levels and noise are drawn per clip.
"""

from __future__ import annotations

import numpy as np

from datamodules.synth import instruments as ins
from datamodules.synth.plan import MusicPlan

FADE = 0.12  # seconds of cross-fade when a layer comes or goes


def render_music(plan: MusicPlan, sr: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The mono wave (float32, peak below 1) and each tell-tale layer's gain curve (per sample)."""
    n = int(round(plan.seconds * sr))
    mix = np.zeros(n)
    curves: dict[str, np.ndarray] = {}
    for name, render in _LAYERS[plan.style].items():
        curve = _gain_curve(plan, name, n, sr)
        curves[name] = curve
        if curve.max() <= 0:
            continue
        track = np.zeros(n)
        render(track, plan, sr, rng, _active_times(plan, name))
        mix += plan.gains[name] * track * curve
    neutral = np.zeros(n)
    _pad(neutral, plan, sr, rng)
    mix += plan.gains["pad"] * neutral
    neutral[:] = 0.0
    _tick(neutral, plan, sr, rng)
    mix += plan.gains["tick"] * neutral
    noise = np.convolve(rng.standard_normal(n), np.ones(4) / 4.0, mode="same")
    mix += plan.noise_level * noise / max(1e-9, float(np.std(noise)))
    peak = float(np.max(np.abs(mix))) or 1.0
    wave = mix * (float(rng.uniform(0.5, 0.9)) / peak)
    return wave.astype(np.float32), curves


def _gain_curve(plan: MusicPlan, name: str, n: int, sr: int) -> np.ndarray:
    """1 where the layer plays, 0 elsewhere, with linear ramps of FADE seconds at the boundaries."""
    t = np.arange(n) / sr
    step = np.zeros(n)
    for sec in plan.sections:
        if name in sec.layers:
            step[(t >= sec.start) & (t < sec.end)] = 1.0
    k = max(1, int(FADE * sr))
    padded = np.concatenate([[0.0], np.cumsum(np.pad(step, (k // 2, k - k // 2), mode="edge"))])
    return (padded[k:] - padded[:-k])[:n] / k


def _active_times(plan: MusicPlan, name: str) -> list[tuple[float, float]]:
    return [(s.start - FADE, s.end + FADE) for s in plan.sections if name in s.layers]


def _in(times: np.ndarray, spans: list[tuple[float, float]], before: float = 0.0) -> np.ndarray:
    """Keep onsets that sound inside an active span (notes starting `before` earlier still count)."""
    keep = np.zeros(times.shape, dtype=bool)
    for a, b in spans:
        keep |= (times >= a - before) & (times < b)
    return times[keep]


def _beat_positions(plan: MusicPlan, pattern: list[float], bar_beats: int) -> np.ndarray:
    """Onset times of a per-bar pattern (in beats from the bar's downbeat) over the whole clip."""
    n_bars = int(np.ceil(plan.seconds / (plan.period * bar_beats))) + 2
    pos = np.array([bar * bar_beats + p for bar in range(-1, n_bars) for p in pattern])
    return plan.first_beat + pos * plan.period


def _chord_at(plan: MusicPlan, time: float, beats_per_chord: int) -> list[int]:
    beat = int(np.floor((time - plan.first_beat) / plan.period + 1e-6))
    return plan.chord(beat + 16 * beats_per_chord, beats_per_chord)  # offset keeps the index positive


# ---- ballet ---------------------------------------------------------------------------------------

def _melody(track, plan, sr, rng, spans):
    tilt = rng.uniform(1.0, 1.5)
    vib_rate, vib_depth = rng.uniform(5.0, 6.5), rng.uniform(0.003, 0.006)
    beat = -1
    degree = int(rng.integers(0, 5))
    end_beat = int(plan.seconds / plan.period) + 2
    while beat < end_beat:
        length = int(rng.choice([1, 2, 2, 3]))
        onset = plan.first_beat + beat * plan.period
        if _in(np.array([onset]), spans, before=length * plan.period).size:
            degree = int(np.clip(degree + rng.choice([-2, -1, -1, 1, 1, 2]), -2, 9))
            note = plan.key_root + 12 + plan.scale[degree % 7] + 12 * (degree // 7)
            wave = ins.tone(ins.midi_hz(note), length * plan.period + 0.25, sr, ins.harmonic_amps(8, tilt),
                            attack=0.09, release=0.25, vibrato_rate=vib_rate, vibrato_depth=vib_depth)
            ins.place(track, 0.35 * wave, np.array([onset]), sr)
        beat += length


def _strings(track, plan, sr, rng, spans):
    tilt = rng.uniform(1.4, 1.9)
    bar = plan.meter * plan.period
    for onset in _in(_beat_positions(plan, [0.0], plan.meter), spans, before=bar):
        notes = _chord_at(plan, onset, plan.meter)
        for note in notes + [notes[0] - 12]:
            for cents in (-4.0, 4.0):
                f = ins.midi_hz(note + cents / 100.0)
                wave = ins.tone(f, bar + 0.35, sr, ins.harmonic_amps(6, tilt), attack=0.35, release=0.35)
                ins.place(track, 0.09 * wave, np.array([onset]), sr)


def _harp(track, plan, sr, rng, spans):
    decay = rng.uniform(0.4, 0.8)
    for onset in _in(_beat_positions(plan, [float(b) for b in range(plan.meter)], plan.meter), spans):
        beat = int(round((onset - plan.first_beat) / plan.period))
        notes = _chord_at(plan, onset, plan.meter)
        note = notes[beat % 3] + 12 * ((beat % (2 * 3)) // 3)
        wave = ins.tone(ins.midi_hz(note), 1.2, sr, ins.harmonic_amps(10, 0.9), attack=0.003, release=0.05,
                        decay=decay)
        ins.place(track, 0.25 * wave, np.array([onset]), sr)


# ---- zumba ----------------------------------------------------------------------------------------

def _kick4(track, plan, sr, rng, spans):
    sample = ins.kick(sr, rng.uniform(120, 160), rng.uniform(45, 60), rng.uniform(0.12, 0.2))
    ins.place(track, 0.8 * sample, _in(_beat_positions(plan, [0.0, 1.0, 2.0, 3.0], 4), spans), sr)


def _latin_perc(track, plan, sr, rng, spans):
    hi = ins.drum(sr, rng.uniform(300, 380), rng.uniform(0.05, 0.09))
    lo = ins.drum(sr, rng.uniform(170, 220), rng.uniform(0.1, 0.16))
    clave = ins.drum(sr, rng.uniform(2200, 2800), 0.02, drop=0.0)
    shaker = ins.noise_burst(sr, rng, rng.uniform(0.02, 0.035), 0.9)
    six = 0.25  # a sixteenth note, in beats
    slaps = _beat_positions(plan, [2 * six, 3 * six, 10 * six, 11 * six], 4)
    ins.place(track, 0.35 * hi, _in(slaps, spans), sr)
    ins.place(track, 0.4 * lo, _in(_beat_positions(plan, [7 * six, 8 * six, 15 * six], 4), spans), sr)
    ins.place(track, 0.25 * clave, _in(_beat_positions(plan, [0.0, 1.5, 3.0, 5.0, 6.0], 8), spans), sr)
    shakes = _in(_beat_positions(plan, [i * six for i in range(16)], 4), spans)
    on_eighth = np.isclose(((shakes - plan.first_beat) / plan.period * 2) % 1, 0, atol=0.05)
    accents = np.where(on_eighth, 1.0, 0.45)
    ins.place(track, 0.12 * shaker, shakes, sr, accents)


def _stabs(track, plan, sr, rng, spans):
    pattern = [[0.5, 1.5, 2.5, 3.5], [0.0, 0.75, 1.5, 2.5, 3.5], [0.5, 1.0, 2.5, 3.25]][int(rng.integers(3))]
    length = rng.uniform(0.09, 0.15)
    for onset in _in(_beat_positions(plan, pattern, 4), spans):
        for note in _chord_at(plan, onset, 4):
            wave = ins.tone(ins.midi_hz(note + 12), length, sr, ins.harmonic_amps(24, 1.0), attack=0.004,
                            release=0.05)
            ins.place(track, 0.12 * wave, np.array([onset]), sr)


# ---- hiphop ---------------------------------------------------------------------------------------

def _backbeat(track, plan, sr, rng, spans):
    kick = ins.kick(sr, rng.uniform(90, 120), rng.uniform(38, 48), rng.uniform(0.2, 0.32))
    snare = ins.snare(sr, rng, rng.uniform(170, 220), rng.uniform(0.1, 0.18))
    pattern = [[0.0, 2.5], [0.0, 0.75, 2.5], [0.0, 1.75, 2.5]][int(rng.integers(3))]
    ins.place(track, 0.9 * kick, _in(_beat_positions(plan, pattern, 4), spans), sr)
    ins.place(track, 0.55 * snare, _in(_beat_positions(plan, [1.0, 3.0], 4), spans), sr)


def _swing_hats(track, plan, sr, rng, spans):
    hat = ins.noise_burst(sr, rng, rng.uniform(0.025, 0.045), 1.0)
    on = _in(_beat_positions(plan, [0.0, 1.0, 2.0, 3.0], 4), spans)
    off = _in(_beat_positions(plan, [b + plan.swing for b in range(4)], 4), spans)
    ins.place(track, 0.22 * hat, on, sr)
    ins.place(track, 0.14 * hat, off, sr)


def _sub_bass(track, plan, sr, rng, spans):
    starts = [0.0, 2.5]
    for onset in _in(_beat_positions(plan, starts, 4), spans, before=2.5 * plan.period):
        within = round(((onset - plan.first_beat) / plan.period) % 4, 3)
        length = (2.5 if within < 1 else 1.5) * plan.period
        root = _chord_at(plan, onset, 4)[0] - 24
        wave = ins.tone(ins.midi_hz(root), length, sr, np.array([1.0, 0.15]), attack=0.01, release=0.08)
        ins.place(track, 0.6 * wave, np.array([onset]), sr)


# ---- neutral material -----------------------------------------------------------------------------

def _pad(track, plan, sr, rng):
    length = 4 * plan.period
    for onset in _beat_positions(plan, [0.0], 4):
        for note in _chord_at(plan, onset, 4):
            wave = ins.tone(ins.midi_hz(note), length + 0.4, sr, np.array([1.0, 0.25, 0.08]), attack=0.4,
                            release=0.4)
            ins.place(track, 0.08 * wave, np.array([onset]), sr)


def _tick(track, plan, sr, rng):
    sample = ins.drum(sr, rng.uniform(800, 1400), rng.uniform(0.02, 0.04), drop=0.1)
    ins.place(track, 0.2 * sample, plan.beat_times, sr)


_LAYERS = {
    "ballet": {"melody": _melody, "strings": _strings, "harp": _harp},
    "zumba": {"kick4": _kick4, "latin_perc": _latin_perc, "stabs": _stabs},
    "hiphop": {"backbeat": _backbeat, "swing_hats": _swing_hats, "sub_bass": _sub_bass},
}
