"""Throughput figures of a language-model run: tokens per second and, on a GPU, model FLOPs utilisation."""

import lightning as L
import torch
from lightning.fabric.utilities.throughput import get_available_flops


def language_model(trainer: L.Trainer, example: torch.Tensor, forward_flops: int, seconds: float) -> dict:
    """`throughput/tokens_per_s`: tokens trained (steps x batch x context x accumulation x ranks) per second of fit
    (its validation passes included). `throughput/mfu` on a GPU: 3 x forward FLOPs per token (forward and
    backward) x tokens/s over the device's peak for the run's precision (Lightning's table of GPU peaks,
    `lightning.fabric.utilities.throughput`)."""
    batch_size = trainer.datamodule.batch_size
    tokens = trainer.global_step * trainer.accumulate_grad_batches * batch_size * example.shape[1] * trainer.world_size
    per_second = tokens / seconds if seconds > 0 else 0.0
    figures = {"throughput/tokens_per_s": round(per_second, 1)}
    device = trainer.strategy.root_device
    if device.type == "cuda":
        dtype = torch.bfloat16 if "bf16" in str(trainer.precision) else torch.float32
        peak = get_available_flops(device, dtype)
        if peak:
            flops_per_token = forward_flops / example.shape[1]
            figures["throughput/mfu"] = round(3 * flops_per_token * per_second / (peak * trainer.world_size), 4)
    return figures
