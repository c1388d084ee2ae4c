"""Attributions for a few test samples (captum's integrated gradients) and a sparsity figure for selection."""

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn


def integrated_gradients(net: nn.Module, x: Tensor, target: Tensor, steps: int = 32) -> Tensor:
    """Attribution of each input feature to the logit of `target`, from an all-zero baseline (the mean input
    after standardisation)."""
    from captum.attr import IntegratedGradients

    was_training = net.training
    net.eval()
    attributions = IntegratedGradients(net).attribute(x, baselines=torch.zeros_like(x), target=target, n_steps=steps)
    net.train(was_training)
    return attributions.detach()


def features_for_mass(attributions: Tensor, mass: float = 0.9) -> float:
    """Mean over samples of the fraction of input features needed to hold `mass` of the total |attribution|:
    lower means the model relies on fewer features (a simple interpretability figure for model selection)."""
    flat = attributions.flatten(1).abs()
    ordered = flat.sort(1, descending=True).values.cumsum(1)
    needed = (ordered < mass * ordered[:, -1:]).sum(1) + 1
    return float((needed.float() / flat.shape[1]).mean())


def save(attributions: Tensor, x: Tensor, target: Tensor, out_dir: Path) -> None:
    """attributions.npy (samples, *input_shape) and attributions.png (input and attribution side by side)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    np.save(out_dir / "attributions.npy", attributions.cpu().numpy())
    n = len(x)
    fig, axes = plt.subplots(2, n, figsize=(1.6 * n, 3.4), squeeze=False)
    for i in range(n):
        image = x[i].cpu()
        attribution = attributions[i].cpu()
        if image.ndim == 3:  # (C, H, W): show the channel mean
            axes[0, i].imshow(image.mean(0), cmap="gray")
            limit = float(attribution.abs().max()) or 1.0
            axes[1, i].imshow(attribution.sum(0), cmap="coolwarm", vmin=-limit, vmax=limit)
        else:
            axes[0, i].bar(range(image.numel()), image.flatten())
            axes[1, i].bar(range(attribution.numel()), attribution.flatten())
        axes[0, i].set_title(f"class {int(target[i])}", fontsize=8)
        for ax in axes[:, i]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("input")
    axes[1, 0].set_ylabel("attribution")
    fig.tight_layout()
    fig.savefig(out_dir / "attributions.png", dpi=100)
    plt.close(fig)
