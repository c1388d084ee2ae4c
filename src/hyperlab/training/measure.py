"""What a run measures about itself: forward FLOPs per sample, peak memory and, for a language model, tokens per
second and model FLOPs utilisation."""

import resource

import lightning as L
import torch
from lightning.fabric.utilities.throughput import get_available_flops


def flops_per_sample(net: torch.nn.Module, sample: torch.Tensor) -> int:
    """Forward FLOPs for one sample, a (1, ...) batch (torch.utils.flop_counter counts matmuls and convolutions)."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = net.training
    net.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(sample.to(next(net.parameters()).device))
    net.train(was_training)
    return counter.get_total_flops()


def peak_memory_mb() -> float:
    """Peak CUDA memory allocated by torch, or on CPU the process's peak resident set (imports included)."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux reports KiB


def run_figures(trainer: L.Trainer, net: torch.nn.Module, example: torch.Tensor, train_s: float, task: str) -> dict:
    """The figures metrics.json records for every run: steps, epochs, fit time, size, FLOPs, memory."""
    figures = {
        "trainer/global_step": trainer.global_step,
        "trainer/epoch": trainer.current_epoch,
        "time/train_s": round(train_s, 3),
        "model/params": sum(p.numel() for p in net.parameters()),
        "model/flops": flops_per_sample(net, example),
        "memory/peak_mb": peak_memory_mb(),
    }
    if task == "language_model":
        figures.update(language_model(trainer, example, figures["model/flops"], train_s))
    return figures


def language_model(trainer: L.Trainer, example: torch.Tensor, forward_flops: int, seconds: float) -> dict:
    """`throughput/tokens_per_s`: tokens trained (steps x batch x context x accumulation x ranks) per second of fit
    (its validation passes included). `throughput/mfu` on a GPU: 3 x forward FLOPs per token (forward and
    backward) x tokens/s over the device's peak for the run's precision (Lightning's table of GPU peaks,
    `lightning.fabric.utilities.throughput`)."""
    batch_size = trainer.datamodule.batch_size
    tokens = trainer.global_step * trainer.accumulate_grad_batches * batch_size * example.shape[1] * trainer.world_size
    per_second = tokens / seconds if seconds > 0 else 0.0
    # data/tokens_trained: D of a scaling law, the whole run's (a resumed run's or a cooldown branch's included)
    figures = {"throughput/tokens_per_s": round(per_second, 1), "data/tokens_trained": tokens}
    device = trainer.strategy.root_device
    if device.type == "cuda":
        dtype = torch.bfloat16 if "bf16" in str(trainer.precision) else torch.float32
        peak = get_available_flops(device, dtype)
        if peak:
            flops_per_token = forward_flops / example.shape[1]
            figures["throughput/mfu"] = round(3 * flops_per_token * per_second / (peak * trainer.world_size), 4)
    return figures
