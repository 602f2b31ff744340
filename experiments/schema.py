"""The whole experiment configuration: one typed tree composed from each package's own blocks."""

from dataclasses import dataclass, field

from datamodules.config import DataConfig
from evaluation.config import EvaluationConfig
from lightning_modules.config import CompositionConfig, DecompositionConfig, StyleExtractorConfig


@dataclass
class TrainerConfig:
    """Where and how Lightning trains: shared by every stage."""

    accelerator: str = "cpu"  # cpu | cuda | gpu | auto
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"  # auto | ddp | ddp_spawn | ...
    precision: str = "32-true"  # 32-true | bf16-mixed | 16-mixed
    deterministic: bool = True
    log_every_n_steps: int = 10
    progress_bar: bool = False
    threads: int = 0  # torch CPU threads; 0 leaves torch's default (in no stage key)
    overfit_batches: float = 0.0  # > 0: train (and validate) on this many fixed batches, a debugging check


@dataclass
class LoggingConfig:
    wandb: bool = True
    project: str = "d2m-lab"
    mode: str = "offline"  # offline | online | disabled
    entity: str = ""
    tags: list[str] = field(default_factory=list)
    csv: bool = True


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    group: str = "default"  # W&B group and the folder under runs/
    preset: str = "paper"  # paper | small | tiny: size defaults applied before the YAML file
    seed: int = 0
    runs_dir: str = "runs"
    data: DataConfig = field(default_factory=DataConfig)
    style: StyleExtractorConfig = field(default_factory=StyleExtractorConfig)
    decomposition: DecompositionConfig = field(default_factory=DecompositionConfig)
    composition: CompositionConfig = field(default_factory=CompositionConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
