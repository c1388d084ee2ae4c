"""A validation split too small to choose by, said once per process with what to do instead.

With a few dozen rows, a validation accuracy moves in steps of several points, so the epoch or checkpoint it picks
is noise (a 5-row validation split picked epoch 0 of a run that went on improving). Said once: a cross-validated
run or a search trains many splits in one process, and one line is enough.
"""

import torch

from hyperlab import console
from hyperlab.contracts import TensorSplits

FEW_ROWS = 30  # below this, one row moves a validation accuracy by more than 3 points
FEW_PER_CLASS = 2  # a split with fewer rows of a class scores that class by one row or none

_said: list[str] = []  # what this process said already: the first fold's words stand for all


def advice(val_rows: int, class_counts: list[int] | None, folds: int | None) -> str | None:
    """The warning for a validation split of `val_rows` rows (`class_counts` per class for classification),
    or None when it is large enough; `folds`: data.num_folds when the run is cross-validated."""
    if val_rows == 0:  # a refit on train + val: nothing is chosen by validation
        return None
    rare = min(class_counts) if class_counts else None
    few_of_a_class = rare is not None and rare < FEW_PER_CLASS
    # k-fold: the estimate is the mean over every fold's rows; only a class a fold cannot score is worth a word
    if not few_of_a_class and (folds or val_rows >= FEW_ROWS):
        return None
    held = f"{val_rows} rows" + (f", {rare} of its rarest class" if few_of_a_class else "")
    if folds:
        todo = f"use fewer, larger folds (data.num_folds below {folds}), or more rows of that class"
    else:
        todo = (
            "score by k-fold cross-validation (data.num_folds=5), or train a fixed trainer.max_epochs and keep the "
            "final weights (callbacks.model_checkpoint=null callbacks.early_stopping=null)"
        )
    return (
        f"warning: validation holds {held}: an epoch or checkpoint chosen by it is mostly noise "
        f"(one row moves its accuracy by {100 / val_rows:.1f} points). To do: {todo}."
    )


def warn_if_small(datamodule, folds: int | None) -> None:
    """Say `advice` for this data module's validation split, once per process."""
    counts = None
    if datamodule.task == "classification" and isinstance(datamodule, TensorSplits):
        targets = datamodule.splits["val"].tensors[1]
        counts = torch.bincount(targets.long(), minlength=datamodule.num_classes).tolist() if len(targets) else None
    message = advice(datamodule.split_sizes().get("val", 0), counts, folds)
    if message and not _said:
        _said.append(message)
        console.say(message)
