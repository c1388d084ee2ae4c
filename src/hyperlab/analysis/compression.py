"""Model compression: a pruning schedule for Lightning's ModelPruning, sparsity, int8 quantisation."""

import copy
import io
import warnings
from collections.abc import Iterable

import torch
from torch import nn


class PruningSchedule:
    """`amount(epoch)` for ModelPruning: prune at the end of epochs start_epoch..end_epoch so that the fraction of
    zero weights grows evenly to `final`. Each call prunes a fraction of the weights still left, so the amounts
    are chosen to make the cumulative sparsity after epoch e equal final * (e - start + 1) / (end - start + 1).
    """

    def __init__(self, final: float, start_epoch: int = 0, end_epoch: int = 4):
        if not 0.0 <= final < 1.0 or end_epoch < start_epoch:
            raise ValueError(f"pruning: final={final} must be in [0, 1) and end_epoch >= start_epoch")
        self.final, self.start, self.end = final, start_epoch, end_epoch

    def target(self, epoch: int) -> float:
        """The cumulative sparsity after pruning at the end of `epoch`."""
        if epoch < self.start:
            return 0.0
        done = min(epoch, self.end) - self.start + 1
        return self.final * done / (self.end - self.start + 1)

    def __call__(self, epoch: int) -> float:
        if not self.start <= epoch <= self.end:
            return 0.0
        before, after = self.target(epoch - 1), self.target(epoch)
        return (after - before) / (1.0 - before)  # of what is left


def sparsity(net: nn.Module) -> float:
    """Fraction of exact zeros among the weight matrices and kernels (what pruning acts on)."""
    weights = [p for p in net.parameters() if p.ndim >= 2]
    return sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)


def serialized_mb(state_dict: dict) -> float:
    """Size of `torch.save(state_dict)` in MiB."""
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    return buffer.tell() / 2**20


def quantize_dynamic_int8(net: nn.Module) -> nn.Module:
    """Post-training dynamic quantisation: Linear and LSTM weights to int8, activations quantised on the fly
    (torch.ao.quantization; CPU inference). Convolutions stay float: dynamic quantisation has no conv kernel."""
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():  # torch marks its quantised tensor types for a move to torchao
        warnings.simplefilter("ignore")
        return quantize_dynamic(copy.deepcopy(net).cpu().eval(), {nn.Linear, nn.LSTM}, dtype=torch.qint8)


def prepare_static(net: nn.Module, example: torch.Tensor) -> nn.Module:
    """A copy of `net` with observers for static quantisation (FX graph mode, x86 backend). Fails for networks
    torch.fx cannot trace (data-dependent control flow: the LSTM, nn.TransformerEncoder)."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import prepare_fx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return prepare_fx(copy.deepcopy(net).cpu().eval(), get_default_qconfig_mapping("x86"), (example.cpu(),))


def quantize_static_int8(net: nn.Module, calibration: Iterable[torch.Tensor]) -> nn.Module:
    """Post-training static quantisation: observers record activation ranges over the calibration batches, then
    weights and activations of Linear and Conv layers become int8 (CPU inference)."""
    from torch.ao.quantization.quantize_fx import convert_fx

    batches = list(calibration)
    prepared = prepare_static(net, batches[0])
    with torch.no_grad():
        for x in batches:
            prepared(x.cpu())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return convert_fx(prepared)
