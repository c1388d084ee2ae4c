"""A classical model a model selection chose (hydra.sweeper.selection.baselines=compete), as eval.py reads it: a
scikit-learn or aeon pipeline stored without pickle (skops), beside the data config its rows come from.

skops loads only the types it is told to trust: those of scikit-learn, aeon, numpy and scipy and our
`as_series`; a file holding any other type is refused, not loaded."""

from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from hyperlab.builders.rows import test_rows
from hyperlab.errors import ConfigError

TRUSTED = ("sklearn.", "aeon.", "numpy.", "scipy.", "builtins.", "hyperlab.builders.rows.as_series")
DATA = "data.yaml"  # beside the model: the data config of the search it was selected in


def load(path: Path):
    """The pipeline stored at `path`, its types checked first."""
    import skops.io

    types = skops.io.get_untrusted_types(file=path)
    refused = [name for name in types if not name.startswith(TRUSTED)]
    if refused:
        raise ConfigError(f"ckpt_path={str(path)!r} holds types outside scikit-learn, aeon and numpy: {refused}")
    return skops.io.load(path, trusted=types)


def save_data_config(folder: Path, data) -> None:
    """The data node, resolved (its ${batch_size}, ${seed} read from the config it was part of)."""
    OmegaConf.save(OmegaConf.create(OmegaConf.to_container(data, resolve=True)), folder / DATA)


def test_split(path: Path) -> dict:
    """The test rows of the data config stored beside the model (x, y codes, row ids, class names)."""
    data = OmegaConf.load(path.parent / DATA)
    return test_rows(data)


def probabilities(model, x: np.ndarray, num_classes: int) -> torch.Tensor:
    """(N, C) class probabilities; a classifier without predict_proba (SVC) gives its decision as one-hot."""
    if hasattr(model, "predict_proba"):
        try:
            return torch.as_tensor(model.predict_proba(x), dtype=torch.float32)
        except AttributeError:  # SVC(probability=False) has the method but refuses to run it
            pass
    predicted = torch.as_tensor(np.asarray(model.predict(x)).astype(np.int64))
    return torch.nn.functional.one_hot(predicted, num_classes).float()
