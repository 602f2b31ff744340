"""The `d2m` command line: a thin layer that parses arguments and calls one function per command.

The command names and flags are a contract (DESIGN.md section 8). Bad input ends with a one-line
`d2m: error: ...` and exit status 2, never a traceback (set D2M_TRACEBACK=1 to see one).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from datamodules.errors import D2MError


def _data_synth(a: argparse.Namespace) -> None:
    from datamodules.config import FeatureConfig, SynthConfig
    from datamodules.synth import build_synthetic

    synth = SynthConfig(clips_per_style=a.clips_per_style, seconds=a.seconds, difficulty=a.difficulty, seed=a.seed)
    print(build_synthetic(Path(a.out), synth, FeatureConfig()))


def _data_import(a: argparse.Namespace) -> None:
    from datamodules.import_d2m import import_d2m

    print(import_d2m(Path(a.src), Path(a.out)))


def _data_prepare(a: argparse.Namespace) -> None:
    from datamodules.prepare import prepare_dataset

    print(prepare_dataset(Path(a.keypoints), Path(a.audio), Path(a.out), labels_csv=a.labels, fps_in=a.fps))


def _run(a: argparse.Namespace, until: str = "evaluation") -> None:
    from experiments.config import load_config

    cfg = load_config(a.config, a.overrides)  # a bad config fails here, before anything heavy loads
    from experiments.run import run_experiment

    print(run_experiment(cfg, until=until))


def _train(a: argparse.Namespace) -> None:
    _run(a, until=a.stage)


def _evaluate(a: argparse.Namespace) -> None:
    from experiments.evaluate_run import evaluate_run_dir

    print(evaluate_run_dir(Path(a.run_dir)))


def _generate(a: argparse.Namespace) -> None:
    from experiments.generate import generate_from_run

    for path in generate_from_run(Path(a.run), Path(a.audio), Path(a.out), samples=a.samples, seed=a.seed,
                                  beat_warp=a.beat_warp, progress=not a.quiet):
        print(path)


def _ablate(a: argparse.Namespace) -> None:
    from ablations.runner import run_matrix

    print(run_matrix(Path(a.matrix), jobs=a.jobs, export_sweep=a.export_sweep, only_cell=a.cell, only_seed=a.seed,
                     only_device=a.device))


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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="d2m", description="d2m-lab: music-to-dance experiments (Dancing to Music).")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = sub.add_parser("data", help="build, import or prepare a dataset")
    dsub = data.add_subparsers(dest="data_command", required=True, metavar="SOURCE")
    s = dsub.add_parser("synth", help="the built-in synthetic music + dance dataset")
    s.add_argument("--out", required=True)
    s.add_argument("--clips-per-style", type=int, default=12)
    s.add_argument("--seconds", type=float, default=30.0)
    s.add_argument("--difficulty", choices=["easy", "medium", "hard"], default="medium")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=_data_synth)
    s = dsub.add_parser("import-d2m", help="convert the original release's data.zip layout")
    s.add_argument("src")
    s.add_argument("--out", required=True)
    s.set_defaults(func=_data_import)
    s = dsub.add_parser("prepare", help="your own keypoints (OpenPose JSON or .npy) and audio")
    s.add_argument("--keypoints", required=True)
    s.add_argument("--audio", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--labels", default=None, help="CSV with columns name,style (default: folder names)")
    s.add_argument("--fps", type=float, default=None, help="keypoint frame rate when not 15 (e.g. 30)")
    s.set_defaults(func=_data_prepare)

    s = sub.add_parser("run", help="one experiment through all stages; prints the run directory")
    s.add_argument("config", help="YAML file or built-in name (tiny, demo, paper)")
    s.add_argument("overrides", nargs="*", help="key=value overrides, e.g. composition.losses.kl.enabled=false")
    s.set_defaults(func=_run)

    s = sub.add_parser("train", help="one stage (and what it needs); prints the run directory")
    s.add_argument("stage", choices=["style", "decomposition", "composition"])
    s.add_argument("config")
    s.add_argument("overrides", nargs="*")
    s.set_defaults(func=_train)

    s = sub.add_parser("evaluate", help="score a run directory; writes RUN_DIR/metrics.json")
    s.add_argument("run_dir")
    s.set_defaults(func=_evaluate)

    s = sub.add_parser("generate", help="dances for your music from a trained run")
    s.add_argument("--run", required=True)
    s.add_argument("--audio", required=True)
    s.add_argument("--out", required=True, help="FILE.mp4, FILE.gif or FILE.npy")
    s.add_argument("--samples", type=int, default=1)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--beat-warp", action="store_true", help="move kinematic beats onto the music's beats")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_generate)

    s = sub.add_parser("ablate", help="run a matrix of experiments; writes results/<matrix name>/")
    s.add_argument("matrix")
    s.add_argument("--jobs", type=int, default=1, help="cells run at once")
    s.add_argument("--export-sweep", default=None, metavar="FILE", help="write the grid as a W&B sweep and stop")
    s.add_argument("--cell", default=None, help="run only this cell")
    s.add_argument("--seed", type=int, default=None, help="run only this seed")
    s.add_argument("--device", default=None, help="run only this device")
    s.set_defaults(func=_ablate)

    s = sub.add_parser("table", help="rebuild every table and plot of a matrix from its run directories")
    s.add_argument("path", help="a matrix file, a results folder (results/NAME) or a runs group (runs/GROUP)")
    s.add_argument("--baseline", default=None, help="the cell the others are compared to")
    s.add_argument("--out", default=None, help="where to write (default: the results folder of the matrix)")
    s.set_defaults(func=_table)

    s = sub.add_parser("config", help="print the resolved config, or one stage's hashed section")
    s.add_argument("config", help="YAML file or built-in name (tiny, demo, paper)")
    s.add_argument("overrides", nargs="*", help="key=value overrides")
    s.add_argument("--stage", default=None, choices=["data", "style", "decomposition", "composition", "evaluation"],
                   help="print what this stage's key hashes, under a first line 'key: <stage key>'")
    s.set_defaults(func=_config)

    s = sub.add_parser("bench", help="training-step timing per module on CPU and CUDA")
    s.add_argument("--devices", default="cpu,cuda")
    s.add_argument("--preset", choices=["paper", "small", "tiny"], default="paper")
    s.add_argument("--steps", type=int, default=20)
    s.add_argument("--out", default="results/bench")
    s.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    s.add_argument("--compile", action="store_true", help="torch.compile the networks")
    s.add_argument("--modules", default=None, help="comma-separated subset of the benchmarked modules")
    s.set_defaults(func=_bench)

    s = sub.add_parser("import-original", help="the original release's checkpoints into a run directory")
    s.add_argument("--decomp", required=True, help="Stage1.ckpt")
    s.add_argument("--comp", required=True, help="Stage2.ckpt")
    s.add_argument("--style", required=True, help="aud_3cls.ckpt")
    s.add_argument("--out", required=True, help="the run directory to create")
    s.add_argument("--data", default=None, help="dataset root recorded for evaluation (default: none)")
    s.set_defaults(func=_import_original)
    return p


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("WANDB_MODE", "offline")
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except D2MError as err:
        if os.environ.get("D2M_TRACEBACK"):
            raise
        print(f"d2m: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("d2m: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
