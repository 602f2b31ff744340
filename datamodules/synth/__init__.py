"""The built-in synthetic dataset: procedural music and dance for three styles (zumba, ballet, hiphop).

Why synthetic: every test, the demo and CI need data that is offline, small, deterministic and
still rich enough that each model has something real to learn and each metric something to measure.

What it holds, per clip (seeded by seed, style and clip index):
- Music (music.py, plan.py): a tempo from an overlapping per-style range, a random key, progression,
  timbre, mix and noise; the style's three tell-tale layers (ballet: legato melody, strings, harp;
  zumba: four-on-the-floor kick, latin percussion, bright stabs; hiphop: backbeat kick and snare,
  swung hats, sub bass) come and go in sections, over neutral material shared by all styles.
- Ambiguity by design: in neutral sections (a few seconds each; how often is the `difficulty` knob)
  only the tempo hints at the style, so a 2 s window is often ambiguous, while a neutral section
  never outlasts 5.5 s at the default difficulty and a 10 s window always holds tell-tale music.
  A small classifier on 2 s windows therefore plateaus well below 100 %, and a bigger one on 10 s
  windows can approach it: the contrast the improved style extractor is about.
- Dance (body.py, moves.py, dance.py): a forward-kinematics skeleton (constant bone lengths), a
  per-style movement repertoire, one key pose per music beat with a cosine ease in between (motion
  slows to rest on each beat, so kinematic beats land on music beats), per-dancer size, proportions,
  stance and position.
- Stored extras: `beats_true` (the beats the music was made with), `telltale` (per frame, the share
  of tell-tale layers playing) and `tempo`, for tests and for analysing classifiers.
"""

from datamodules.synth.build import build_synthetic
from datamodules.synth.generate import SynthClip, generate_clip
from datamodules.synth.plan import STYLES, TEMPO_RANGE

__all__ = ["STYLES", "TEMPO_RANGE", "SynthClip", "build_synthetic", "generate_clip"]
