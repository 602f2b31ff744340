"""Load, validate and resolve an experiment configuration.

Order of precedence (later wins): the schema's paper-size defaults, the size preset, the YAML file,
then `key=value` overrides from the command line. Every mistake (an unknown key, a wrong type, a
value outside its choices, a missing file) is a D2MError naming the key or path, raised before any
work starts.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from common.errors import D2MError
from datamodules.config import AUGMENTATIONS, check_augmentations
from experiments.presets import PRESETS
from experiments.schema import ExperimentConfig
from lightning_modules.losses import known_terms

CONFIG_DIR = Path(__file__).parent / "configs"
PROJECT_DIR = Path(__file__).resolve().parents[1]  # paths in matrix files are relative to the project

CHOICES: dict[str, tuple[str, ...]] = {
    "preset": tuple(PRESETS),
    "data.source": ("synth", "canonical"),
    "data.unit_mode": ("fixed", "beat_normalized"),
    "data.synth.difficulty": ("easy", "medium", "hard"),
    "data.features.backend": ("librosa", "torchaudio"),
    "style.arch": ("original", "improved"),
    "decomposition.kl_reduction": ("sum", "mean"),
    "decomposition.pair_reduction": ("sum", "mean"),
    "decomposition.movement_distance_codes": ("sampled", "mean"),
    "decomposition.optim.clip_mode": ("per_network", "joint"),
    "composition.kl_reduction": ("sum", "mean"),
    "composition.style_step": ("separate", "joint"),
    "composition.optim.clip_mode": ("per_network", "joint"),
    "trainer.accelerator": ("cpu", "cuda", "gpu", "auto"),
    "trainer.precision": ("32-true", "32", "bf16-mixed", "16-mixed", "bf16-true"),
    "logging.mode": ("offline", "online", "disabled"),
}


def resolve_path(path: str | Path) -> Path:
    """A config path as given, or a bare name looked up in experiments/configs/ (`demo` -> demo.yaml)."""
    p = Path(path)
    if p.is_file():
        return p
    for candidate in (CONFIG_DIR / p, CONFIG_DIR / f"{p}.yaml", PROJECT_DIR / p):
        if candidate.is_file():
            return candidate
    known = ", ".join(sorted(c.stem for c in CONFIG_DIR.glob("*.yaml")))
    raise D2MError(f"config file not found: {path} (built-in configs: {known})")


def _allowed_keys(node: Any) -> str:
    if isinstance(node, DictConfig):
        return ", ".join(str(k) for k in node.keys())
    return "(none)"


def _friendly(err: OmegaConfBaseException, schema: DictConfig, source: str) -> D2MError:
    key = getattr(err, "full_key", None) or ""
    msg = str(err).splitlines()[0]
    if "not in" in msg or "Key '" in msg and "not" in msg:
        parent = key.rsplit(".", 1)[0] if "." in key else ""
        node = OmegaConf.select(schema, parent) if parent else schema
        return D2MError(f"unknown config key '{key}' in {source}; allowed here: {_allowed_keys(node)}")
    return D2MError(f"bad value for config key '{key}' in {source}: {msg}")


def _merge(cfg: DictConfig, other: Any, schema: DictConfig, source: str) -> DictConfig:
    try:
        return OmegaConf.merge(cfg, other)
    except OmegaConfBaseException as err:
        raise _friendly(err, schema, source) from None


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """Build the resolved, validated experiment config from a YAML file and dot-list overrides."""
    schema = OmegaConf.structured(ExperimentConfig)
    file_cfg: Any = {}
    source = "defaults"
    if path is not None:
        p = resolve_path(path)
        source = str(p)
        try:
            file_cfg = OmegaConf.load(p)
        except Exception as err:  # YAML syntax errors come in several types
            raise D2MError(f"cannot read config {p}: {str(err).splitlines()[0]}") from None
        if not isinstance(file_cfg, DictConfig):
            raise D2MError(f"config {p} must be a mapping of keys, not a {type(file_cfg).__name__}")
    for item in overrides:
        if "=" not in item:
            raise D2MError(f"override '{item}' is not of the form key=value")
    try:
        cli = OmegaConf.from_dotlist(list(overrides))
    except OmegaConfBaseException as err:
        raise D2MError(f"cannot parse overrides {list(overrides)}: {str(err).splitlines()[0]}") from None
    preset = cli.get("preset") or file_cfg.get("preset") or "paper"
    if preset not in PRESETS:
        raise D2MError(f"bad value for config key 'preset': '{preset}'; choices: {', '.join(PRESETS)}")
    cfg = schema
    cfg = _merge(cfg, PRESETS[preset], schema, f"preset '{preset}'")
    cfg = _merge(cfg, file_cfg, schema, source)
    cfg = _merge(cfg, cli, schema, "command-line overrides")
    if path is not None and "name" not in file_cfg and "name" not in cli:
        cfg.name = Path(source).stem
    validate(cfg)
    OmegaConf.set_readonly(cfg, False)
    return cfg


def validate(cfg: DictConfig) -> None:
    """Check choices and loss-term names that the type system alone cannot."""
    for key, choices in CHOICES.items():
        value = OmegaConf.select(cfg, key)
        if value not in choices:
            raise D2MError(f"bad value for config key '{key}': '{value}'; choices: {', '.join(choices)}")
    for model in ("decomposition", "composition"):
        known = known_terms(model)
        for name in cfg[model].losses:
            if known and name not in known:
                raise D2MError(
                    f"unknown loss term '{model}.losses.{name}'; known terms: {', '.join(known)}"
                )
    if cfg.seed < 0:
        raise D2MError(f"bad value for config key 'seed': {cfg.seed}; must be >= 0")
    check_augmentations(**{key: cfg.data[key] for key in AUGMENTATIONS})


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)


def to_container(cfg: DictConfig | Any) -> Any:
    if isinstance(cfg, DictConfig) or OmegaConf.is_config(cfg):
        return OmegaConf.to_container(cfg, resolve=True)
    return cfg


def config_hash(obj: Any, length: int = 10) -> str:
    """A short, stable hash of a config node or plain value (key order does not matter)."""
    text = json.dumps(to_container(obj), sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:length]
