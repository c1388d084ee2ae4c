"""A decoder-only transformer language model (GPT-2 shape): token and position embeddings, pre-norm blocks of
causal self-attention and a GELU MLP, a final layer norm, and an output layer tied to the token embedding."""

import functools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from hyperlab.errors import choose
from hyperlab.models import layers


class CausalSelfAttention(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float, scale: float | None = None):
        super().__init__()
        if width % heads:
            raise ValueError(f"model.width={width} must be a multiple of model.heads={heads}")
        self.heads, self.dropout, self.scale = heads, dropout, scale  # None: 1/sqrt(head dim)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)  # a residual projection: depth-scaled init (GPT.__init__)
        self.proj_dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:  # (B, T, C) -> (B, T, C)
        batch, steps, width = x.shape
        q, k, v = self.qkv(x).split(width, dim=2)
        # (B, nh, T, hs): scaled_dot_product_attention picks the flash / memory-efficient kernels on a GPU
        q, k, v = (t.view(batch, steps, self.heads, width // self.heads).transpose(1, 2) for t in (q, k, v))
        dropout = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True, scale=self.scale)
        return self.proj_dropout(self.proj(y.transpose(1, 2).reshape(batch, steps, width)))


class Block(nn.Module):
    """x + attention(norm(x)), then x + mlp(norm(x)): pre-norm, so the residual stream is never normalised."""

    def __init__(self, width: int, heads: int, dropout: float, attention_scale: float | None = None):
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attention = CausalSelfAttention(width, heads, dropout, attention_scale)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width), nn.Dropout(dropout)
        )

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class GPT(nn.Module):
    """Next-token logits at every position: (B, T) token ids -> (B, T, vocab_size).

    Weights start N(0, init_std = 0.02), the residual projections (attention output, MLP output) N(0, init_std /
    sqrt(2 depth))
    so the residual stream's variance does not grow with depth (GPT-2). `activation_checkpointing` recomputes each
    block's activations in the backward pass instead of keeping them: memory per block for compute.
    `parametrization="mup"` (with m = width / base_width): hidden matrices start with std / sqrt(m), attention
    scores are scaled by 1/d instead of 1/sqrt(d), and the readout's input by 1/m; the learning rates come from
    hyperlab.training.parametrization. At width == base_width it is the standard network. `output_multiplier`
    (muP's alpha_out) scales the logits in both parametrisations (alpha / m under muP): a hyperparameter tuned at
    the base width like the learning rate, since the tied readout's 1/m alone leaves a wide network's logits
    learning slower than the base's (docs/mup.md). `init_std` (muP's sigma) and `embedding_lr_multiplier` are
    tuned at the base width too, and kept at every width.
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        num_classes: int,
        vocab_size: int | None = None,
        width: int = 192,
        depth: int = 4,
        heads: int = 6,
        dropout: float = 0.0,
        tie_weights: bool = True,
        activation_checkpointing: bool = False,
        parametrization: str = "standard",
        base_width: int = 192,
        output_multiplier: float = 1.0,
        init_std: float = 0.02,
        embedding_lr_multiplier: float = 1.0,
    ):
        super().__init__()
        if vocab_size is None:
            raise ValueError("model=gpt is a language model over token ids: use data=stdlib (or data=text)")
        mup = choose("model.parametrization", parametrization, ("standard", "mup")) == "mup"
        m = width / base_width if mup else 1.0  # the width multiplier (hyperlab.training.parametrization)
        # muP: attention logits q.k / d rather than / sqrt(d) (a head's q and k become correlated in training, so
        # their dot product grows like d), equal to the standard scale at base width
        attention_scale = math.sqrt(base_width / heads) / (width / heads) if mup else None
        (context,) = in_shape
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.position_embedding = nn.Embedding(context, width)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(width, heads, dropout, attention_scale) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        # muP: the logits' input x alpha / m; the standard network's only when alpha is set
        alpha = output_multiplier / m
        self.readout = layers.Readout(alpha) if mup or alpha != 1.0 else nn.Identity()
        self.head = nn.Linear(width, num_classes, bias=False)
        self.activation_checkpointing = activation_checkpointing
        self.initialise(init_std, depth, m)
        if tie_weights:  # one matrix embeds tokens and scores them (Press & Wolf 2017): vocab x width fewer
            self.head.weight = self.token_embedding.weight
        # contracts.PerParameterLearningRates: the embeddings (and the tied readout) at lr x this. muP keeps their
        # Adam LR constant in width, many times the standard network's at a wide width, so it is tuned at the base
        # width with the LR (docs/mup.md)
        embeddings = ("token_embedding.weight", "position_embedding.weight")
        self.lr_multipliers = dict.fromkeys(embeddings, embedding_lr_multiplier) if embedding_lr_multiplier != 1 else {}

    def initialise(self, std: float, depth: int, m: float) -> None:
        """Weights N(0, std) (GPT-2's 0.02 by default; muP's sigma, tuned at the base width), the residual
        projections std / sqrt(2 depth); hidden matrices / sqrt(m) under muP (variance ~ 1/width); biases 0."""
        self.apply(functools.partial(self._init, std=std))
        for name, parameter in self.named_parameters():
            if name.startswith("blocks.") and parameter.ndim == 2:
                residual = name.endswith(("attention.proj.weight", "mlp.2.weight"))
                nn.init.normal_(parameter, std=(std / math.sqrt(2 * depth) if residual else std) / math.sqrt(m))

    @staticmethod
    def _init(module: nn.Module, std: float) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=std)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, ids: Tensor) -> Tensor:  # (B, T) -> (B, T, vocab)
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.dropout(self.token_embedding(ids) + self.position_embedding(positions))
        for block in self.blocks:
            if self.activation_checkpointing and self.training:
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return self.head(self.readout(self.norm(x)))
