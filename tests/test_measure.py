"""What a run measures about itself (hyperlab.training.measure), from known step counts and shapes."""

from types import SimpleNamespace

import pytest
import torch

from hyperlab.training import measure


def fake_trainer(device: str) -> SimpleNamespace:
    """10 optimizer steps of 2 accumulated batches of 4 windows, on 2 ranks."""
    return SimpleNamespace(
        global_step=10,
        accumulate_grad_batches=2,
        world_size=2,
        datamodule=SimpleNamespace(batch_size=4),
        strategy=SimpleNamespace(root_device=torch.device(device)),
        precision="bf16-mixed",
    )


def test_tokens_per_second_is_steps_times_batch_times_context_times_accumulation_times_ranks():
    example = torch.zeros(1, 16, dtype=torch.long)  # context 16
    figures = measure.language_model(fake_trainer("cpu"), example, forward_flops=1600, seconds=2.0)
    tokens = 10 * 4 * 16 * 2 * 2  # steps x batch x context x accumulation x ranks
    assert figures == {"throughput/tokens_per_s": tokens / 2.0, "data/tokens_trained": tokens}  # no MFU off a GPU


def test_mfu_is_three_forward_flops_per_token_times_tokens_per_second_over_the_peak(monkeypatch):
    peaks = []
    monkeypatch.setattr(measure, "get_available_flops", lambda device, dtype: peaks.append(dtype) or 1e6)
    example = torch.zeros(1, 16, dtype=torch.long)
    figures = measure.language_model(fake_trainer("cuda"), example, forward_flops=1600, seconds=2.0)
    # 3 x (1600 / 16 FLOPs per token) x 1280 tokens/s over 1e6 FLOP/s per device x 2 devices
    assert figures["throughput/mfu"] == pytest.approx(3 * 100 * 1280 / (1e6 * 2))
    assert peaks == [torch.bfloat16]  # the peak for the run's precision


def test_flops_per_sample_counts_a_linear_layers_multiply_adds():
    net = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    assert measure.flops_per_sample(net, torch.zeros(1, 8)) == 2 * (8 * 4 + 4 * 2)
