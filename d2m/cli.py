"""The `d2m` command line: a thin layer that parses arguments and calls one function per command.

The command names and flags are a contract (DESIGN.md section 8). Bad input ends with a one-line
`d2m: error: ...` and exit status 2, never a traceback (set D2M_TRACEBACK=1 to see one).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from common.errors import D2MError, Terminated


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: X)" to an option's help, except where there is no value to show (a flag,
    an option whose absence means "not given", a required option)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False, argparse.SUPPRESS) or action.required or action.nargs == "*":
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """Every (sub)command's parser (subcommands inherit the class): help that shows the defaults."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)


def _data_synth(a: argparse.Namespace) -> None:
    from datamodules.config import FeatureConfig, SynthConfig
    from datamodules.synth import build_synthetic

    synth = SynthConfig(clips_per_style=a.clips_per_style, seconds=a.seconds, difficulty=a.difficulty, seed=a.seed)
    print(build_synthetic(Path(a.out), synth, FeatureConfig(), force=a.force))


def _data_import(a: argparse.Namespace) -> None:
    from datamodules.import_d2m import import_d2m

    print(import_d2m(Path(a.src), Path(a.out), force=a.force))


def _data_prepare(a: argparse.Namespace) -> None:
    from datamodules.prepare import PrepareConfig, prepare_dataset

    print(prepare_dataset(Path(a.keypoints), Path(a.audio), Path(a.out), labels_csv=a.labels, fps_in=a.fps,
                          config=None if a.tolerance is None else PrepareConfig(duration_tolerance=a.tolerance),
                          force=a.force))


def _run(a: argparse.Namespace, until: str = "evaluation") -> None:
    from experiments.config import load_config

    cfg = load_config(a.config, a.overrides)  # a bad config fails here, before anything heavy loads
    from experiments.run import run_experiment

    print(run_experiment(cfg, until=until))


def _train(a: argparse.Namespace) -> None:
    _run(a, until=a.stage)


def _evaluate(a: argparse.Namespace) -> None:
    if a.controls:
        _evaluate_controls(a)
        return
    if not a.run_dir:
        raise D2MError("evaluate needs a RUN_DIR (or --controls --out DIR)")
    from experiments.evaluate_run import evaluate_run_dir

    print(evaluate_run_dir(Path(a.run_dir)))


def _evaluate_controls(a: argparse.Namespace) -> None:
    from datamodules import ensure_dataset
    from evaluation.controls import write_controls

    if not a.out:
        raise D2MError("evaluate --controls needs --out DIR")
    data = {"root": a.data, "source": "canonical"} if a.data else {}
    root = ensure_dataset(data)  # the default built-in dataset is built when absent
    print(write_controls(Path(a.out), root, {}, Path(a.cache)))


def _generate(a: argparse.Namespace) -> None:
    from experiments.generate import generate_from_run

    for path in generate_from_run(Path(a.run), Path(a.audio), Path(a.out), samples=a.samples, seed=a.seed,
                                  beat_warp=a.beat_warp, seam_blend=a.seam_blend, progress=not a.quiet):
        print(path)


def _ablate(a: argparse.Namespace) -> None:
    from ablations.runner import run_matrix

    print(run_matrix(Path(a.matrix), jobs=a.jobs, export_sweep=a.export_sweep, only_cell=a.cell, only_seed=a.seed,
                     only_device=a.device, launcher=a.launcher))


def _table(a: argparse.Namespace) -> None:
    from ablations.rebuild import load_spec, rebuild_tables

    spec, out = load_spec(a.path, baseline=a.baseline)
    rebuild_tables(spec, Path(a.out) if a.out else out)
    print(Path(a.out) if a.out else out)


def _config(a: argparse.Namespace) -> None:
    from experiments.config import load_config, to_yaml

    cfg = load_config(a.config, a.overrides)
    if a.stage is None:
        print(to_yaml(cfg), end="")
        return
    from experiments.stage_graph import stage_key, stage_yaml

    print(f"key: {stage_key(cfg, a.stage)}")
    print(stage_yaml(cfg, a.stage), end="")


def _bench(a: argparse.Namespace) -> None:
    from ablations.bench import run_bench

    print(run_bench(devices=a.devices.split(","), preset=a.preset, steps=a.steps, out=Path(a.out),
                    precision=a.precision, compile=a.compile, modules=a.modules.split(",") if a.modules else None))


def _import_original(a: argparse.Namespace) -> None:
    from experiments.import_original import import_original

    print(import_original(decomp=Path(a.decomp), comp=Path(a.comp), style=Path(a.style), out=Path(a.out),
                          data_root=a.data))


FORCE_HELP = "replace an existing d2m-lab dataset of the same kind at --out (anything else is never replaced)"


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


# The interrupts `_redeliver_swallowed_interrupt` is sending again, with their timers: the callback
# that dropped one may also have failed the call it served (a read callback of an audio decoder),
# and the error that follows is then the signal's doing, not bad input.
_SWALLOWED: list[tuple[KeyboardInterrupt, threading.Timer]] = []


def _swallowed_interrupt() -> KeyboardInterrupt | None:
    """The interrupt being sent again, if any, its re-sending cancelled: the caller reports it."""
    if not _SWALLOWED:
        return None
    exc, resend = _SWALLOWED.pop()
    resend.cancel()
    _SWALLOWED.clear()
    return exc


def _redeliver_swallowed_interrupt(unraisable) -> None:
    """Send again a SIGTERM or Ctrl-C whose exception Python had to drop.

    A signal that arrives while Python runs a callback it cannot raise from (a weakref or import-lock
    callback, a __del__) lands here as an "ignored" exception, and the command would carry on as if
    nothing happened. A timer thread sends the signal again a moment later, once this callback has
    returned, so that it is raised in ordinary code (raising it from here would be dropped again).
    """
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
        signum = signal.SIGTERM if isinstance(unraisable.exc_value, Terminated) else signal.SIGINT
        resend = threading.Timer(0.05, os.kill, (os.getpid(), signum))
        resend.daemon = True
        _SWALLOWED.append((unraisable.exc_value, resend))
        resend.start()
    else:
        sys.__unraisablehook__(unraisable)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="d2m", description="d2m-lab: music-to-dance experiments (Dancing to Music).")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = sub.add_parser("data", help="build, import or prepare a dataset")
    dsub = data.add_subparsers(dest="data_command", required=True, metavar="SOURCE")
    s = dsub.add_parser("synth", help="the built-in synthetic music + dance dataset",
                        description="Build the procedural music + dance dataset (ballet, zumba, hiphop) in the "
                        "canonical format; deterministic by seed.")
    s.add_argument("--out", required=True, help="folder to create for the dataset")
    s.add_argument("--clips-per-style", type=int, default=12, help="clips of each style")
    s.add_argument("--seconds", type=float, default=30.0, help="length of each clip in seconds")
    s.add_argument("--difficulty", choices=["easy", "medium", "hard"], default="medium",
                   help="how often the music drops its style's tell-tale layers for neutral material")
    s.add_argument("--seed", type=int, default=0, help="random seed of the whole dataset")
    s.add_argument("--force", action="store_true", help=FORCE_HELP)
    s.set_defaults(func=_data_synth)
    s = dsub.add_parser("import-d2m", help="convert the original release's data.zip layout",
                        description="Convert the original release's data (unpacked data.zip) into the canonical "
                        "format, keeping its three styles and its normalisation statistics.")
    s.add_argument("src", help="the unpacked data.zip folder")
    s.add_argument("--out", required=True, help="folder to create for the canonical dataset")
    s.add_argument("--force", action="store_true", help=FORCE_HELP)
    s.set_defaults(func=_data_import)
    s = dsub.add_parser(
        "prepare", help="your own keypoints (OpenPose JSON or .npy) and audio",
        description="Turn your own dance keypoints and their music into a canonical dataset, which "
        "`d2m run demo data.source=canonical data.root=OUT` then trains on. Each clip under --keypoints is a "
        "folder of OpenPose JSON files (BODY_25 or COCO-18, one per frame) or one .npy file (frames, joints, 2|3); "
        "its music is the file under --audio with the same name (wav, flac, ogg, mp3, ...). Keypoints are "
        "resampled to 15 fps, mapped to the 14 joints and gaps filled; audio features, train/val/test splits "
        "and normalisation statistics are computed; nothing is written unless every clip is good.")
    s.add_argument("--keypoints", required=True,
                   help="folder of clips (a folder of JSON files or one .npy each), in <style>/ unless --labels")
    s.add_argument("--audio", required=True, help="folder holding one music file per clip, named like the clip")
    s.add_argument("--out", required=True, help="folder to create for the dataset")
    s.add_argument("--labels", default=None, metavar="CSV",
                   help="CSV with columns name (or clip_id) and style, optionally split "
                   "(default: the style is the name of the folder holding the clip)")
    s.add_argument("--fps", type=float, default=None,
                   help="the keypoints' frame rate, e.g. 30 (default: the usual camera rate nearest "
                   "keypoint frames / music seconds, printed with the mismatch it implies)")
    s.add_argument("--tolerance", type=float, default=None, metavar="SECONDS",
                   help="largest keypoints-music duration difference accepted (default: 1 s)")
    s.add_argument("--force", action="store_true", help=FORCE_HELP)
    s.set_defaults(func=_data_prepare)

    s = sub.add_parser("run", help="one experiment through all stages; prints the run directory")
    s.add_argument("config", help="YAML file or built-in name (tiny, demo, paper)")
    s.add_argument("overrides", nargs="*", help="key=value overrides, e.g. composition.losses.kl.enabled=false")
    s.add_argument("--quiet", action="store_true", help="no progress bar or progress lines")
    s.set_defaults(func=_run)

    s = sub.add_parser("train", help="one stage (and what it needs); prints the run directory")
    s.add_argument("stage", choices=["style", "decomposition", "composition"], help="the stage to train")
    s.add_argument("config", help="YAML file or built-in name (tiny, demo, paper)")
    s.add_argument("overrides", nargs="*", help="key=value overrides, e.g. style.arch=improved")
    s.add_argument("--quiet", action="store_true", help="no progress bar or progress lines")
    s.set_defaults(func=_train)

    s = sub.add_parser("evaluate", help="score a run directory (writes RUN_DIR/metrics.json), or the controls")
    s.add_argument("run_dir", nargs="?", default=None,
                   help="a run directory printed by d2m run (or made by d2m import-original); not with --controls")
    s.add_argument("--controls", action="store_true", help="score the control dances; writes DIR/controls.csv/.md")
    s.add_argument("--data", default=None,
                   help="dataset root for --controls (default: the built-in dataset, built on first use)")
    s.add_argument("--out", default=None, metavar="DIR",
                   help="output folder for --controls (default: none; required with --controls)")
    s.add_argument("--cache", default="runs/cache", help="dance-classifier cache folder")
    s.set_defaults(func=_evaluate)

    s = sub.add_parser("generate", help="dances for your music from a trained run")
    s.add_argument("--run", required=True, help="a finished run directory (d2m run or d2m import-original)")
    s.add_argument("--audio", required=True, help="the music: wav, flac, ogg, mp3, ...")
    s.add_argument("--out", required=True,
                   help="FILE.mp4 (with the music), FILE.gif or FILE.npy; keypoints also go to FILE.npy and FILE.json")
    s.add_argument("--samples", type=int, default=1, help="dances to generate for the music")
    s.add_argument("--seed", type=int, default=0, help="random seed of the generated dances")
    s.add_argument("--beat-warp", action="store_true", help="move kinematic beats onto the music's beats")
    s.add_argument("--seam-blend", type=int, default=0, metavar="FRAMES",
                   help="blend each unit into the one before over this many frames (0: off)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_generate)

    s = sub.add_parser("ablate", help="run a matrix of experiments; writes results/<matrix name>/")
    s.add_argument("matrix", help="matrix YAML file or built-in name (e.g. demo, style-extractor, ablations)")
    s.add_argument("--jobs", type=int, default=1, help="cells run at once, each in its own process")
    s.add_argument("--export-sweep", default=None, metavar="FILE",
                   help="write the grid as a W&B sweep and stop (default: run the matrix)")
    s.add_argument("--cell", default=None, help="run only this cell (default: every cell)")
    s.add_argument("--seed", type=int, default=None, help="run only this seed (default: every seed of the matrix)")
    s.add_argument("--device", default=None, help="run only this device (default: every device of the matrix)")
    s.add_argument("--quiet", action="store_true", help="no live status of the running cells")
    s.add_argument("--launcher", choices=["local", "submitit"], default="local",
                   help="local: child processes here; submitit: one job per run (SLURM where sbatch exists, "
                        "else submitit's local executor; D2M_SUBMITIT_CLUSTER, D2M_SUBMITIT=key=value,... set it)")
    s.set_defaults(func=_ablate)

    s = sub.add_parser("table", help="rebuild every table and plot of a matrix from its run directories")
    s.add_argument("path", help="a matrix file, a results folder (results/NAME) or a runs group (runs/GROUP)")
    s.add_argument("--baseline", default=None,
                   help="the cell the others are compared to "
                   "(default: the matrix's; for a runs group 'full', else the first cell)")
    s.add_argument("--out", default=None, help="where to write (default: the results folder of the matrix)")
    s.set_defaults(func=_table)

    s = sub.add_parser("config", help="print the resolved config, or one stage's hashed section")
    s.add_argument("config", help="YAML file or built-in name (tiny, demo, paper)")
    s.add_argument("overrides", nargs="*", help="key=value overrides")
    s.add_argument("--stage", default=None, choices=["data", "style", "decomposition", "composition", "evaluation"],
                   help="print what this stage's key hashes, under a first line 'key: <stage key>' "
                   "(default: the whole resolved config)")
    s.set_defaults(func=_config)

    s = sub.add_parser("bench", help="training-step timing per module on CPU and CUDA")
    s.add_argument("--devices", default="cpu,cuda",
                   help="comma-separated devices; cuda means every CUDA device present (skipped where none is)")
    s.add_argument("--preset", choices=["paper", "small", "tiny"], default="paper", help="network and batch sizes")
    s.add_argument("--steps", type=int, default=20, help="timed training steps per module and device")
    s.add_argument("--out", default="results/bench", help="folder for the timing tables and plots")
    s.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="bf16 runs CUDA steps in bf16 autocast; CPU steps stay fp32")
    s.add_argument("--compile", action="store_true", help="torch.compile the networks")
    s.add_argument("--modules", default=None, help="comma-separated subset of the benchmarked modules (default: all)")
    s.add_argument("--quiet", action="store_true", help="no progress lines")
    s.set_defaults(func=_bench)

    s = sub.add_parser("import-original", help="the original release's checkpoints into a run directory")
    s.add_argument("--decomp", required=True, help="Stage1.ckpt")
    s.add_argument("--comp", required=True, help="Stage2.ckpt")
    s.add_argument("--style", required=True, help="aud_3cls.ckpt")
    s.add_argument("--out", required=True, help="the run directory to create")
    s.add_argument("--data", default=None, help="dataset root recorded for evaluation (default: none)")
    s.set_defaults(func=_import_original)
    return p


def _interrupt_behind(err: BaseException) -> KeyboardInterrupt | None:
    """The SIGTERM or Ctrl-C an error was raised while handling, if any.

    A signal that lands inside a compiled extension's module initialisation comes back as
    `ImportError("initialization failed")` whose cause is the interrupt (pybind11 wraps it so), and
    `load_audio` turns that into "cannot decode audio file": the chain of causes still holds it.
    """
    seen: set[int] = set()
    link: BaseException | None = err
    while link is not None and id(link) not in seen:
        if isinstance(link, KeyboardInterrupt):
            return link
        seen.add(id(link))
        link = link.__cause__ or link.__context__
    return None


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("WANDB_MODE", "offline")
    from experiments.progress import ENV_MODE
    from experiments.quiet import install

    install()
    _SWALLOWED.clear()
    args = build_parser().parse_args(argv)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if main_thread else None  # unwind, cleaning up
    previous_hook, sys.unraisablehook = sys.unraisablehook, _redeliver_swallowed_interrupt
    if getattr(args, "quiet", False):
        os.environ[ENV_MODE] = "off"  # read by the trainers and the matrix status, here and in child processes
    try:
        try:
            args.func(args)
        except D2MError as err:
            dropped = _swallowed_interrupt() or _interrupt_behind(err)
            if dropped is not None:  # an error a signal caused: report the signal
                raise dropped from None
            raise
    except D2MError as err:
        if os.environ.get("D2M_TRACEBACK"):
            raise
        print(f"d2m: error: {err}", file=sys.stderr)
        return 2
    except Terminated:
        print("d2m: terminated (SIGTERM); rerun the same command to resume", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("d2m: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    finally:
        sys.unraisablehook = previous_hook
        if main_thread and previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
