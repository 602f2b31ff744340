"""`d2m import-original`: the original release's checkpoints as a d2m-lab run directory.

People who hold the original `Stage1.ckpt` (decomposition), `Stage2.ckpt` (composition) and
`aud_3cls.ckpt` (music style classifier) should be able to evaluate, ablate and generate with
d2m-lab at once, and get the same outputs for the same inputs. d2m-lab's networks carry the
original's parameter names and layouts (DESIGN.md section 9), so an import is a key-for-key copy;
what this module adds is the checking around that copy and the run directory around the result.

A checkpoint found on the internet is untrusted input. Every file is read with
`torch.load(..., weights_only=True)`, which refuses any pickled object other than tensors and plain
containers, so no code inside a file ever runs. Everything a file holds is then checked against the
paper-size networks before a single weight is copied: a missing key, an unexpected key, a wrong
shape, a non-float or non-finite tensor is a `D2MError` that names the file, the key and (for
shapes) both shapes, instead of a model that silently computes something else.

Where the weights go:
- `style` checkpoint: `StyleExtractorModule`, the `original` architecture, from `aud_3cls.ckpt`.
- `decomposition` checkpoint: `DecompositionModule` with the four networks of `Stage1.ckpt`.
- `composition` checkpoint: `CompositionModule`, which alone can generate: the style extractor from
  `aud_3cls.ckpt`, the initial-pose encoder and decoder from `Stage1.ckpt`, and the movement encoder
  and pose decoder as fine-tuned during composition training, from `Stage2.ckpt`, with the six
  composition networks.

The original's normalisation statistics live with its data, not in its checkpoints. They are taken
from a canonical dataset's `stats.npz` when `data_root` is given (e.g. one made from the original
`data.zip` by `d2m data import-d2m`); otherwise the modules get the identity (mean 0, std 1), and
`import.json` says so, because poses and features would then not be scaled as the original was
trained.
"""

from __future__ import annotations

import hashlib
import io
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn

from common.atomic import atomic_dir, read_json, write_json, write_text
from common.errors import D2MError
from experiments.config import load_config, to_container, to_yaml
from experiments.rundir import mark_done
from lightning_modules.config import plain

__all__ = [
    "COMPOSITION_FILE_NETWORKS",
    "DECOMPOSITION_FILE_NETWORKS",
    "FEATURE_NOTE",
    "IMPORT_NOTE",
    "ORIGINAL_CLASSES",
    "import_original",
    "load_untrusted",
]

ORIGINAL_CLASSES = ("zumba", "ballet", "hiphop")  # the order of aud_3cls.ckpt's output logits
DECOMPOSITION_FILE_NETWORKS = ("initp_enc", "initp_dec", "movement_enc", "stdp_dec")  # in Stage1.ckpt
COMPOSITION_FILE_NETWORKS = ("dance_enc", "dance_dec", "audstyle_enc", "danceAud_dis", "zdance_dis", "dance_reg",
                             "stdp_dec", "movement_enc")  # in Stage2.ckpt
FROM_DECOMPOSITION_FILE = ("initp_enc", "initp_dec")  # not fine-tuned in composition: Stage2.ckpt lacks them
IMPORT_NOTE = "import.json"
CHECKPOINTS = {"style": "checkpoints/style.ckpt", "decomposition": "checkpoints/decomposition.ckpt",
               "composition": "checkpoints/composition.ckpt"}
FEATURE_NOTE = (
    "The original release computed its 28 audio features (13 MFCCs and log-energy, and their deltas) with a "
    "Sphinx-style MFCC routine, not librosa. d2m-lab computes them with librosa using the same parameters "
    "(recorded here as the feature spec), so on new music an imported model meets slightly different features "
    "than the original did."
)
IDENTITY_NOTE = (
    "No dataset was given, so pose and feature normalisation are the identity (mean 0, std 1). The original "
    "normalised poses and audio features with statistics of its own data (stats/all_onbeat_*.npy and "
    "stats/all_aud_*.npy in its data.zip), which are not in its checkpoints; until those statistics are supplied "
    "(import again with --data pointing at a canonical dataset made from that data), inputs are not scaled as "
    "the original was trained and outputs will differ from the original's."
)
STATS_KEYS = {"pose_mean": 28, "pose_std": 28, "feature_mean": 28, "feature_std": 28}
_PREFIX = "module."  # a state dict saved from nn.DataParallel; stripping it is a pure renaming


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _refusal_detail(message: str) -> str:
    """The line of torch's weights-only refusal that names what was blocked (it is buried in boilerplate)."""
    for line in message.splitlines():
        if "GLOBAL" in line or "Unsupported" in line or "unsupported" in line:
            return line.strip()
    return ""


def load_untrusted(path: Path) -> tuple[Any, bytes]:
    """Read a file as tensors and plain values only, with the bytes it was read from (for its sha256).

    The bytes are read once and loaded from memory, so the recorded hash is that of exactly what was
    loaded. `weights_only=True` refuses pickled objects of any other type before they are built, so a
    file carrying code (an object whose unpickling would call a function) is refused without running it.
    """
    path = Path(path)
    if not path.is_file():
        raise D2MError(f"{path}: file not found")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise D2MError(f"{path}: cannot read: {err.strerror or err}") from None
    if not data:
        raise D2MError(f"{path}: empty file, not a checkpoint")
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        detail = _refusal_detail(str(err))
        if detail:
            raise D2MError(f"{path}: refused: the file holds pickled objects or instructions beyond tensors and "
                           f"plain values, and d2m-lab never runs code from a checkpoint ({detail})") from None
        first = next((ln.strip() for ln in str(err).splitlines()[1:] if ln.strip()), str(err).splitlines()[0])
        raise D2MError(f"{path}: not a readable torch checkpoint (truncated or another format): {first}") from None
    except Exception as err:  # truncated zip archives and foreign formats fail in many exception types
        first = (str(err).splitlines() or [""])[0] or type(err).__name__
        raise D2MError(f"{path}: not a readable torch checkpoint (truncated or another format): {first}") from None
    return obj, data


def _describe(obj: Any) -> str:
    if isinstance(obj, Mapping):
        keys = [str(k) for k in obj]
        shown = ", ".join(keys[:8]) + (f", ... ({len(keys)} keys)" if len(keys) > 8 else "")
        return f"a dict with keys {shown or '(none)'}"
    return f"a {type(obj).__name__}"


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def _strip_prefix(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if state and all(k.startswith(_PREFIX) for k in state):
        return {k[len(_PREFIX):]: v for k, v in state.items()}
    return dict(state)


def _check_network(path: Path, name: str | None, state: Mapping[str, torch.Tensor], net: nn.Module) -> dict:
    """Check one original state dict against a d2m-lab network; return it as float32 tensors to copy.

    Messages name keys as they appear in the original file (`dance_enc.recurrent.weight_hh_l0`) so a
    user can find them there.
    """
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    state = _strip_prefix(state)

    def label(key: str) -> str:
        return f"{name}.{key}" if name else key

    missing = [k for k in expected if k not in state]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise D2MError(f"{path}: missing {label(missing[0])}{more}")
    unexpected = [k for k in state if k not in expected]
    if unexpected:
        more = f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""
        raise D2MError(f"{path}: unexpected {label(unexpected[0])}{more}: not a parameter of the paper-size "
                       f"network, so this is not the original release's architecture")
    out = {}
    for key, shape in expected.items():
        value = state[key]
        if not isinstance(value, torch.Tensor):
            raise D2MError(f"{path}: {label(key)} is {_describe(value)}, not a tensor")
        if tuple(value.shape) != shape:
            raise D2MError(f"{path}: {label(key)} has shape {tuple(value.shape)} but the paper-size network "
                           f"needs {shape}")
        if not value.is_floating_point():
            raise D2MError(f"{path}: {label(key)} holds {value.dtype} values, not floating-point weights")
        value = value.to(torch.float32)
        if not bool(torch.isfinite(value).all()):
            raise D2MError(f"{path}: {label(key)} holds NaN or infinite values")
        out[key] = value
    return out


def _check_bundle(path: Path, obj: Any, networks: Mapping[str, nn.Module], kind: str) -> dict[str, dict]:
    """A `Stage*.ckpt`: a dict holding one state dict per network (plus optimiser states and counters)."""
    if not isinstance(obj, Mapping):
        raise D2MError(f"{path}: not a {kind} checkpoint of the original release: it holds {_describe(obj)}, "
                       f"expected a dict of state dicts under {', '.join(networks)}")
    if _is_state_dict(obj):
        raise D2MError(f"{path}: not a {kind} checkpoint: it is a bare state dict (like aud_3cls.ckpt), expected "
                       f"state dicts under {', '.join(networks)}")
    checked = {}
    for name, net in networks.items():
        if name not in obj:
            raise D2MError(f"{path}: missing {name} (a {kind} checkpoint holds state dicts under "
                           f"{', '.join(networks)}; this file holds {_describe(obj)})")
        state = obj[name]
        if not isinstance(state, Mapping):
            raise D2MError(f"{path}: {name} is {_describe(state)}, not a state dict")
        checked[name] = _check_network(path, name, state, net)
    return checked


def _counters(obj: Mapping) -> dict[str, int]:
    """The original's training counters (`ep`, `total_it`), kept in the import note as provenance."""
    return {k: int(obj[k]) for k in ("ep", "total_it") if isinstance(obj.get(k), int | float)}


def _dataset_stats(data_root: str) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Pose and feature mean/std from a canonical dataset's stats.npz (28 numbers each)."""
    root = Path(data_root)
    if not root.is_dir():
        raise D2MError(f"--data {data_root}: no such dataset directory")
    stats_file = root / "stats.npz"
    if not stats_file.is_file():
        raise D2MError(f"{stats_file}: not found; --data must name a canonical dataset (DESIGN.md section 2)")
    try:
        with np.load(stats_file, allow_pickle=False) as npz:
            arrays = {k: np.asarray(npz[k]) for k in npz.files}
    except Exception as err:  # a broken zip or a pickled array, in several exception types
        raise D2MError(f"{stats_file}: cannot read: {(str(err).splitlines() or [''])[0]}") from None
    stats = {}
    # A dataset imported from the original release keeps the statistics its checkpoints were trained
    # with as original_*; those make the imported model's outputs equal the original's.
    prefix = "original_" if all(f"original_{k}" in arrays for k in STATS_KEYS) else ""
    for key, n in STATS_KEYS.items():
        key_in_file = prefix + key
        if key_in_file not in arrays:
            raise D2MError(f"{stats_file}: missing {key} (holds: {', '.join(sorted(arrays)) or 'nothing'})")
        value = arrays[key_in_file].astype(np.float64).reshape(-1)
        if value.shape != (n,):
            raise D2MError(f"{stats_file}: {key} has {value.size} numbers but the original model needs {n}")
        if not np.isfinite(value).all():
            raise D2MError(f"{stats_file}: {key} holds NaN or infinite values")
        if key.endswith("_std"):
            value = np.where(value > 0, value, 1.0)  # a constant coordinate: leave it unscaled
        stats[key] = [float(v) for v in value]
    info = {"source": str(stats_file.resolve()), "sha256": _sha256(stats_file.read_bytes()),
            "arrays": "the original release's (original_*)" if prefix else "the dataset's own"}
    meta = read_json(root / "dataset.json", {}) or {}
    if isinstance(meta, dict):
        for key in ("name", "styles"):
            if key in meta:
                info[f"dataset_{key}"] = meta[key]
    return stats, info


def _lightning_checkpoint(module: pl.LightningModule, provenance: dict) -> dict:
    """What `Module.load_from_checkpoint` needs: weights, constructor arguments, the Lightning version."""
    return {
        "state_dict": {k: v.detach().clone() for k, v in module.state_dict().items()},
        "hyper_parameters": plain(dict(module.hparams)),  # loads with weights_only=True
        "pytorch-lightning_version": pl.__version__,
        "d2m_import": provenance,
    }


def _verify(cls: type[pl.LightningModule], path: Path, module: pl.LightningModule) -> None:
    """Reload a written checkpoint the way evaluation and generation will, and compare every weight."""
    try:
        again = cls.load_from_checkpoint(str(path), map_location="cpu", weights_only=True)
    except Exception as err:
        raise D2MError(f"{path.name}: the written checkpoint does not reload as a {cls.__name__}: "
                       f"{(str(err).splitlines() or [''])[0]}") from None
    want, got = module.state_dict(), again.state_dict()
    if set(want) != set(got) or any(not torch.equal(want[k], got[k]) for k in want):
        raise D2MError(f"{path.name}: the written checkpoint reloads with different weights")


def _check_out(out: Path) -> None:
    """Refuse to replace anything but an earlier import: the run directory is swapped in whole."""
    if out.exists():
        if not out.is_dir():
            raise D2MError(f"--out {out}: exists and is not a directory")
        if any(out.iterdir()) and not (out / IMPORT_NOTE).is_file():
            raise D2MError(f"--out {out}: exists, is not empty and is not an imported run directory; "
                           "choose a new directory")


def import_original(decomp: Path, comp: Path, style: Path, out: Path, data_root: str | None = None) -> Path:
    """Turn the original `Stage1.ckpt`, `Stage2.ckpt` and `aud_3cls.ckpt` into a run directory; return it.

    The run directory holds config.yaml (the paper-size config), stages.json, one Lightning checkpoint
    per stage under checkpoints/, import.json (sources, their sha256, class order, feature and
    normalisation notes) and done.json. It is built in a temporary sibling and moved into place, so
    a failed import leaves nothing behind.
    """
    from lightning_modules.composition_module import CompositionModule
    from lightning_modules.decomposition_module import DecompositionModule
    from lightning_modules.style_module import StyleExtractorModule

    decomp, comp, style, out = Path(decomp), Path(comp), Path(style), Path(out)
    _check_out(out)
    stats, stats_info = ({}, {}) if data_root is None else _dataset_stats(data_root)

    # Read all three files first: an unreadable or refused file fails before any heavy work.
    style_obj, style_bytes = load_untrusted(style)
    decomp_obj, decomp_bytes = load_untrusted(decomp)
    comp_obj, comp_bytes = load_untrusted(comp)

    cfg = load_config("paper", ["composition.style_frames=30"])  # the original read 2 s of music for style
    cfg.name = "original-release"
    cfg.group = "imported"
    if data_root is not None:
        cfg.data.root = str(Path(data_root).resolve())
        cfg.data.source = "canonical"
    if cfg.style.arch != "original":
        raise D2MError(f"the paper config's style.arch is '{cfg.style.arch}'; the original release's style "
                       "classifier is the 'original' architecture")
    class_names = list(ORIGINAL_CLASSES)
    feature_spec = to_container(cfg.data.features)
    feature_dim = STATS_KEYS["feature_mean"]
    pose_dim = STATS_KEYS["pose_mean"]

    style_module = StyleExtractorModule(to_container(cfg.style), feature_dim=feature_dim, class_names=class_names)
    decomposition_module = DecompositionModule(to_container(cfg.decomposition), pose_dim=pose_dim,
                                               pose_mean=stats.get("pose_mean"), pose_std=stats.get("pose_std"))
    composition_module = CompositionModule(
        to_container(cfg.composition), decomposition_config=to_container(cfg.decomposition),
        style_config=to_container(cfg.style), feature_dim=feature_dim, class_names=class_names,
        pose_mean=stats.get("pose_mean"), pose_std=stats.get("pose_std"),
        feature_mean=stats.get("feature_mean"), feature_std=stats.get("feature_std"), feature_spec=feature_spec,
        sequence_units=int(cfg.data.sequence_units), unit_frames=int(cfg.data.unit_frames), pose_dim=pose_dim,
    )

    # Check every file completely before copying anything.
    if not isinstance(style_obj, Mapping) or not _is_state_dict(style_obj):
        hint = (" (it holds state dicts under several names, like a Stage*.ckpt)"
                if isinstance(style_obj, Mapping) and any(isinstance(v, Mapping) for v in style_obj.values()) else "")
        raise D2MError(f"{style}: not the original style classifier: expected a bare state dict of tensors "
                       f"(init_h, recurrent.*, classifier.*), found {_describe(style_obj)}{hint}")
    style_state = _check_network(style, None, style_obj, style_module.net)
    decomp_nets = {n: getattr(decomposition_module.model, n) for n in DECOMPOSITION_FILE_NETWORKS}
    decomp_states = _check_bundle(decomp, decomp_obj, decomp_nets, "Stage1 (decomposition)")
    comp_model = composition_module.model
    comp_names = [n for n in COMPOSITION_FILE_NETWORKS if comp_model.has_network(n)]
    if len(comp_names) != len(COMPOSITION_FILE_NETWORKS):
        lacking = sorted(set(COMPOSITION_FILE_NETWORKS) - set(comp_names))
        raise D2MError(f"the paper config builds no {', '.join(lacking)}; enable every composition loss term")
    comp_states = _check_bundle(comp, comp_obj, {n: getattr(comp_model, n) for n in comp_names},
                                "Stage2 (composition)")

    with torch.no_grad():
        style_module.net.load_state_dict(style_state, strict=True)
        comp_model.style_extractor.load_state_dict(style_state, strict=True)
        for name, state in decomp_states.items():
            getattr(decomposition_module.model, name).load_state_dict(state, strict=True)
        for name in FROM_DECOMPOSITION_FILE:
            getattr(comp_model, name).load_state_dict(decomp_states[name], strict=True)
        for name, state in comp_states.items():
            getattr(comp_model, name).load_state_dict(state, strict=True)
    comp_model.style_extractor.eval()

    sources = {
        "style": {"file": str(style.resolve()), "sha256": _sha256(style_bytes), "bytes": len(style_bytes)},
        "decomposition": {"file": str(decomp.resolve()), "sha256": _sha256(decomp_bytes),
                          "bytes": len(decomp_bytes), **_counters(decomp_obj)},
        "composition": {"file": str(comp.resolve()), "sha256": _sha256(comp_bytes), "bytes": len(comp_bytes),
                        **_counters(comp_obj)},
    }
    del style_obj, decomp_obj, comp_obj, style_bytes, decomp_bytes, comp_bytes, decomp_states, comp_states
    normalisation = ({"kind": "dataset", **stats_info} if stats
                     else {"kind": "identity", "note": IDENTITY_NOTE})
    note = {
        "imported_from": "the original Dancing to Music release (Lee et al., NeurIPS 2019)",
        "sources": sources,
        "class_names": class_names,
        "feature_spec": feature_spec,
        "feature_note": FEATURE_NOTE,
        "normalisation": normalisation,
        "networks": {  # d2m-lab network <- the file and entry its weights came from
            "style": {"net": style.name},
            "decomposition": {n: f"{decomp.name} {n}" for n in DECOMPOSITION_FILE_NETWORKS},
            "composition": {
                "style_extractor": style.name,
                **{n: f"{decomp.name} {n}" for n in FROM_DECOMPOSITION_FILE},
                **{n: f"{comp.name} {n}" for n in comp_names},
            },
        },
        "config": "paper",
        "checkpoints": dict(CHECKPOINTS),
    }
    provenance = {"source": "original release", "class_names": class_names,
                  "sha256": {k: v["sha256"] for k, v in sources.items()}}
    stages: dict[str, dict[str, str]] = {stage: {"checkpoint": rel} for stage, rel in CHECKPOINTS.items()}
    if data_root is not None:
        stages["data"] = {"root": str(Path(data_root).resolve())}

    modules = {"style": (StyleExtractorModule, style_module), "decomposition": (DecompositionModule,
               decomposition_module), "composition": (CompositionModule, composition_module)}
    with atomic_dir(out) as tmp:
        for stage, (cls, module) in modules.items():
            target = tmp / CHECKPOINTS[stage]
            target.parent.mkdir(parents=True, exist_ok=True)
            torch.save(_lightning_checkpoint(module, provenance), target)
            _verify(cls, target, module)
        write_text(tmp / "config.yaml", to_yaml(cfg))
        write_json(tmp / "stages.json", stages)
        write_json(tmp / IMPORT_NOTE, note)
        mark_done(tmp, {"imported": True, "class_names": class_names})
    return out
