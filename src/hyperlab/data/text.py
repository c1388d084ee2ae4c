"""Character-level language modelling over English text that ships inside scikit-learn (no download)."""

from pathlib import Path

import numpy as np


def sklearn_descriptions() -> str:
    """The dataset descriptions scikit-learn installs (sklearn/datasets/descr/*.rst): about 43k characters."""
    import sklearn

    folder = Path(sklearn.__file__).parent / "datasets" / "descr"
    return "\n".join(path.read_text(encoding="utf-8") for path in sorted(folder.glob("*.rst")))


def load_characters(seq_len: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Next-character prediction windows: x[i] is `seq_len` character ids, y[i] the same window shifted by one.

    Windows do not overlap and come in text order, so a contiguous split keeps val/test text unseen. Ids are
    the sorted distinct characters, so the vocabulary is `max(id) + 1`.
    """
    if seq_len < 2:
        raise ValueError(f"data.load.seq_len={seq_len} must be >= 2")
    text = sklearn_descriptions()
    vocabulary = np.array(sorted(set(text)))
    ids = np.searchsorted(vocabulary, np.array(list(text)))
    windows = (len(ids) - 1) // seq_len
    x = ids[: windows * seq_len].reshape(windows, seq_len)
    y = ids[1 : windows * seq_len + 1].reshape(windows, seq_len)
    return x, y
