"""`TrainConfig`: the schema of conf/train.yaml's top-level keys, registered with Hydra when this module is imported.

Hydra rejects `lr=abc`, `seed=1.5` or an unknown key at compose time; the value rules a type cannot express
(lr > 0, fractions summing to < 1, ...) are hyperlab.config.rules. Only omegaconf/hydra are imported.
"""

import os
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf


@dataclass
class TrainConfig:
    task_name: str = "train"
    tags: list[str] = field(default_factory=list)
    seed: int = 42
    lr: float = 1e-3
    weight_decay: float = 0.0
    no_decay_bias_norm: bool = False
    regularization: Any = None
    batch_size: int = 64
    min_train_steps: int | None = None
    train: bool = True
    test: bool = True
    ckpt_path: str | None = None
    resume: str = "never"
    optimized_metric: str | None = "val/acc"
    finetune: Any = None
    distill: Any = None
    adversarial: Any = None
    tune: Any = None
    compile: bool = False
    matmul_precision: str = "highest"
    quantize: str | None = None
    interpret: Any = None
    metrics: Any = None
    trial: Any = None  # the study sweeper's trial for this job (hydra_plugins/study_sweeper)
    # config groups, typed by their own files
    data: Any = None
    model: Any = None
    loss: Any = None
    augment: Any = None
    optimizer: Any = None
    scheduler: Any = None
    trainer: Any = None
    callbacks: Any = None
    logger: Any = None
    paths: Any = None


ConfigStore.instance().store(name="train_schema", node=TrainConfig)

# The wandb logger is offline unless the user has set an API key.
OmegaConf.register_new_resolver("env_unset", lambda name: name not in os.environ, replace=True)
