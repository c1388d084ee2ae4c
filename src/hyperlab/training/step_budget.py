"""A floor on the training length in optimizer steps (`min_train_steps`), so that small data gets runs that can
converge: 10 epochs are 180 optimizer steps on digits' 1150 fold rows (batch 64) but 10 steps on 53 rows.

The run still trains whole epochs: trainer.max_epochs is raised, when it is fewer, to the epochs that make at least
`min_train_steps` optimizer steps over this data's train split. Large data keeps its epoch count; whole epochs keep
what is counted in epochs as it is (a search trial's per-epoch reports to its pruner, the refit's epoch count,
early stopping's patience).
"""

import math

from omegaconf import DictConfig


def epochs_for(steps: int, train_rows: int, batch_size: int, accumulate: int = 1) -> int:
    """Whole epochs that make at least `steps` optimizer steps over `train_rows` rows (the last batch of an epoch
    may be short: Lightning keeps it)."""
    steps_per_epoch = max(1, math.ceil(math.ceil(train_rows / batch_size) / accumulate))
    return math.ceil(steps / steps_per_epoch)


def raise_epochs(trainer: DictConfig, min_train_steps: int | None, datamodule) -> None:
    """trainer.max_epochs raised to reach `min_train_steps` on the data module's train rows; nothing when null."""
    if min_train_steps is None:
        return
    rows, accumulate = datamodule.split_sizes()["train"], trainer.get("accumulate_grad_batches") or 1
    trainer.max_epochs = max(trainer.max_epochs, epochs_for(min_train_steps, rows, datamodule.batch_size, accumulate))
