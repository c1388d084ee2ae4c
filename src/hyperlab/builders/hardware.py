"""Refuse a trainer that needs hardware this machine lacks, before any data is prepared or a network built.

Lightning finds out itself, but later and as a traceback (`MisconfigurationException: No supported gpu backend
found!`, or fp16 AMP refused on CPU at the Trainer's construction, after the data module was set up). The
message names the option as the user typed it (`trainer=gpu`, not only `trainer.accelerator=gpu`).
"""

import torch
from omegaconf import DictConfig

from hyperlab.errors import ConfigError

FP16 = ("16-mixed", "16", 16)  # bf16-mixed runs on CPUs; float16 autocast does not (Lightning refuses it there)


def refuse_missing_hardware(trainer: DictConfig, choice: str | None = None) -> None:
    """`choice`: the trainer option composed (`gpu`); by default read from Hydra when it composed this run."""
    accelerator, strategy = str(trainer.get("accelerator", "auto")), str(trainer.get("strategy", "auto"))
    has_cuda, has_mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    choice = choice or _trainer_choice()
    typed = f"trainer={choice}" if choice not in (None, "default") else None
    if (
        (accelerator in ("gpu", "cuda") or strategy.startswith("fsdp"))
        and not has_cuda
        and not (accelerator == "gpu" and has_mps and not strategy.startswith("fsdp"))
    ):
        needs = "trainer.strategy=fsdp" if strategy.startswith("fsdp") else f"trainer.accelerator={accelerator}"
        raise ConfigError(f"{typed or needs}: {needs} needs a CUDA GPU and this machine has none: use trainer=cpu")
    if accelerator == "mps" and not has_mps:
        raise ConfigError(f"{typed or 'trainer.accelerator=mps'}: needs an Apple GPU (MPS), none here: use trainer=cpu")
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not (has_cuda or has_mps))
    precision = trainer.get("precision")
    if on_cpu and precision in FP16:
        raise ConfigError(
            f"trainer.precision={precision}: float16 mixed precision needs a GPU, and this run is on the CPU; "
            "use trainer.precision=bf16-mixed (or 32-true)"
        )
    devices = trainer.get("devices", "auto")
    if has_cuda and accelerator in ("gpu", "cuda") and isinstance(devices, int) and devices > torch.cuda.device_count():
        raise ConfigError(
            f"trainer.devices={devices}: this machine has {torch.cuda.device_count()} CUDA GPU(s) "
            f"({typed or 'trainer.accelerator=' + accelerator})"
        )


def _trainer_choice() -> str | None:
    """The trainer option chosen on the command line (Hydra's runtime choices), when Hydra composed the run."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().runtime.choices.get("trainer") if HydraConfig.initialized() else None
