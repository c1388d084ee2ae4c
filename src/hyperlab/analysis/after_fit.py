"""Figures of the scored (best) weights beyond the metrics: sparsity, an int8 copy, robust accuracy, attributions."""

from pathlib import Path

import torch
from omegaconf import DictConfig

from hyperlab.analysis import compression, interpret, robust


def after_fit(
    module, datamodule, output_dir: Path, quantize: str | None, adversarial: DictConfig | None, samples: int
) -> dict:
    """`quantize` (dynamic | static), `adversarial.attack` and `interpret.samples` (test rows to attribute): each
    adds its figures (and files in `output_dir`) when set; sparsity is always measured."""
    net, extra = module.net, {"model/sparsity": round(compression.sparsity(module.net), 6)}
    attack = (adversarial or {}).get("attack")
    if not (quantize or attack or samples):
        return extra
    test_x, test_y = datamodule.splits["test"].tensors[:2]
    if quantize:
        extra.update(int8_copy(module, datamodule, quantize, output_dir))
    if attack:
        batches = [(test_x.to(module.device), test_y.to(module.device))]
        extra["test/adv_acc"] = robust.robust_accuracy(
            net, module.loss, batches, attack, adversarial.epsilon, adversarial.steps, module.loss.scores
        )
    if samples:
        x, y = test_x[:samples].to(module.device), test_y[:samples].to(module.device)
        attributions = interpret.integrated_gradients(net, x, y)
        interpret.save(attributions, x, y, output_dir)
        extra["interpret/features_90"] = round(interpret.features_for_mass(attributions, 0.9), 4)
    return extra


def int8_copy(module, datamodule, quantize: str, output_dir: Path) -> dict:
    """An int8 copy of the network (`model_int8.pt`), its size beside the float one's, and its test accuracy."""
    net = module.net
    test_x, test_y = datamodule.splits["test"].tensors[:2]
    if quantize == "static":  # calibrated on the first 512 training rows
        quantized = compression.quantize_static_int8(net, datamodule.splits["train"].tensors[0][:512].split(64))
    else:
        quantized = compression.quantize_dynamic_int8(net)
    torch.save(quantized.state_dict(), output_dir / "model_int8.pt")
    with torch.no_grad():
        predicted = module.loss.scores(quantized(test_x.cpu())).argmax(1)
    return {
        "model/size_mb": round(compression.serialized_mb(net.state_dict()), 4),
        "quant/size_mb": round((output_dir / "model_int8.pt").stat().st_size / 2**20, 4),
        "quant/test_acc": (predicted == test_y).float().mean().item(),
    }
