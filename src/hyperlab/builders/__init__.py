"""Builders: objects from their config nodes. `module` builds the data module, network, loss and LightningModule;
`trainer` the Trainer with its callbacks and loggers. hyperlab.train calls them and wires the results."""

from hyperlab.builders.module import build_module, load_module
from hyperlab.builders.trainer import build_trainer, run_callbacks

__all__ = ["build_module", "build_trainer", "load_module", "run_callbacks"]
