from collections.abc import Sequence

from torch import Tensor, nn

from hyperlab.models import layers

State = tuple[Tensor, Tensor]


class LSTM(nn.Module):
    """An LSTM classifier or language model.

    With `vocab_size` (token data, e.g. data=text) it is a language model: ids -> embedding -> LSTM -> logits at
    every position, optionally with the output layer tied to the embedding (`tie_weights`, one shared tensor),
    and trainable with truncated backpropagation through time (`tbptt_steps`, see hyperlab.training.supervised).
    Otherwise it reads an image row by row (or a table feature by feature) and classifies from the last step.
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        num_classes: int,
        vocab_size: int | None = None,
        width: int = 128,
        depth: int = 1,
        dropout: float = 0.0,
        norm: str = "none",
        init: str = "default",
        tie_weights: bool = False,
        tbptt_steps: int | None = None,
    ):
        super().__init__()
        if depth < 1 or width < 1:
            raise ValueError(f"model.depth={depth} and model.width={width} must be >= 1")
        self.language_model = vocab_size is not None
        if (tie_weights or tbptt_steps) and not self.language_model:
            raise ValueError(
                "model.tie_weights and model.tbptt_steps need a language model over token data (data=text); "
                f"this dataset gives inputs of shape {tuple(in_shape)}"
            )
        if self.language_model:
            self.embed = nn.Embedding(vocab_size, width)
            input_size = width
        else:
            self.embed = nn.Identity()
            input_size = layers.sequence_shape(tuple(in_shape))[1]
        self.lstm = nn.LSTM(
            input_size, width, num_layers=depth, dropout=dropout if depth > 1 else 0.0, batch_first=True
        )
        self.norm = layers.sequence_norm(norm, width)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(width, num_classes)
        layers.initialize(self, init, "tanh")
        self.tbptt_steps = tbptt_steps
        if self.language_model:
            nn.init.uniform_(self.embed.weight, -0.1, 0.1)  # small: with tied weights it is also the output layer
        if tie_weights:  # one tensor for both: the output layer scores a token by its input embedding
            self.head.weight = self.embed.weight

    def step(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """Logits and the recurrent state after `x`, starting from `state` (zeros when None)."""
        steps = self.embed(x) if self.language_model else layers.to_steps(x)
        out, state = self.lstm(steps, state)
        out = self.dropout(self.norm(out))
        return self.head(out if self.language_model else out[:, -1]), state

    def forward(self, x: Tensor) -> Tensor:  # (B, T) ids -> (B, T, vocab) | (B, ...) -> (B, num_classes)
        return self.step(x)[0]
