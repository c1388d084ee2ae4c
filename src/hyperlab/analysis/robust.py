"""Adversarial examples: FGSM and PGD under an L-infinity budget, for training and for robust accuracy."""

from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn


def perturb(
    net: nn.Module, loss: Callable, x: Tensor, y: Tensor, attack: str, epsilon: float, steps: int = 5
) -> Tensor:
    """The input within `epsilon` (L-inf) of x that the attack finds to raise the loss: FGSM takes one signed
    gradient step of size epsilon; PGD takes `steps` steps of 2.5 * epsilon / steps from a random start,
    projecting back into the ball after each (Madry et al. 2018). The network's mode is left as it is."""
    if attack == "fgsm":
        steps, step_size, start = 1, epsilon, x
    else:
        step_size, start = 2.5 * epsilon / steps, x + torch.empty_like(x).uniform_(-epsilon, epsilon)
    x_adv = start.detach()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        with torch.enable_grad():
            grad = torch.autograd.grad(loss(net(x_adv), y), x_adv)[0]
        x_adv = x + (x_adv.detach() + step_size * grad.sign() - x).clamp(-epsilon, epsilon)
    return x_adv.detach()


def robust_accuracy(
    net: nn.Module, loss: Callable, batches: Iterable, attack: str, epsilon: float, steps: int, scores: Callable
) -> float:
    """Accuracy on adversarial versions of `batches` (the network in eval mode)."""
    was_training = net.training
    net.eval()
    correct = total = 0
    for x, y, *_ in batches:
        x_adv = perturb(net, loss, x, y, attack, epsilon, steps)
        with torch.no_grad():
            correct += int((scores(net(x_adv)).argmax(1) == y).sum())
        total += len(y)
    net.train(was_training)
    return correct / total
