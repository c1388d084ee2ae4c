from collections.abc import Sequence

import torch
from torch import Tensor, nn

from hyperlab.models import layers


def causal_mask(steps: int, device: torch.device) -> Tensor:
    """-inf above the diagonal: position t attends to positions <= t only."""
    return torch.triu(torch.full((steps, steps), float("-inf"), device=device), diagonal=1)


class Transformer(nn.Module):
    """A pre-norm Transformer encoder.

    Over token ids (`vocab_size` given, data=text) it is a causal language model with logits at every position
    (output layer optionally tied to the embedding). Over an image it classifies from row patches (each of the
    H rows, C*W values, is a token), over a table from one token per feature; the head reads the mean token.
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        num_classes: int,
        vocab_size: int | None = None,
        width: int = 64,
        depth: int = 2,
        heads: int = 4,
        activation: str = "gelu",
        dropout: float = 0.1,
        norm: str = "layer",
        init: str = "default",
        tie_weights: bool = False,
    ):
        super().__init__()
        if depth < 1 or width < 1 or width % heads:
            raise ValueError(f"model.width={width} must be a multiple of model.heads={heads}, model.depth={depth} >= 1")
        self.language_model = vocab_size is not None
        if tie_weights and not self.language_model:
            raise ValueError("model.tie_weights needs a language model over token data (data=text)")
        if self.language_model:
            steps, self.embed = in_shape[0], nn.Embedding(vocab_size, width)
        else:
            steps, features = layers.sequence_shape(tuple(in_shape))
            self.embed = nn.Linear(features, width)
        self.position = nn.Parameter(torch.randn(1, steps, width) * 0.02)
        block = nn.TransformerEncoderLayer(
            width,
            heads,
            4 * width,
            dropout,
            activation=layers.activation(activation),
            batch_first=True,
            norm_first=True,
        )
        self.norm = layers.sequence_norm(norm, width)
        if norm == "none":  # no layer norm anywhere, the blocks' own included
            block.norm1, block.norm2 = nn.Identity(), nn.Identity()
        self.encoder = nn.TransformerEncoder(block, depth, enable_nested_tensor=False)
        self.head = nn.Linear(width, num_classes)
        layers.initialize(self, init, activation)
        if tie_weights:
            self.head.weight = self.embed.weight

    def forward(self, x: Tensor) -> Tensor:  # (B, T) ids -> (B, T, vocab) | (B, ...) -> (B, num_classes)
        tokens = self.embed(x if self.language_model else layers.to_steps(x))
        steps = tokens.shape[1]
        tokens = tokens + self.position[:, :steps]
        if self.language_model:
            mask = causal_mask(steps, tokens.device)
            return self.head(self.norm(self.encoder(tokens, mask=mask, is_causal=True)))
        return self.head(self.norm(self.encoder(tokens)).mean(1))
