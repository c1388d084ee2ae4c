"""Checkpoints: read safely (weights only, checked against the model before anything runs) and written off the
training thread, once per save."""

import functools
import os
import shutil
from pathlib import Path
from weakref import proxy

import torch
from lightning.fabric.utilities.cloud_io import _is_local_file_protocol
from lightning.pytorch import callbacks
from lightning.pytorch.plugins.io import AsyncCheckpointIO, TorchCheckpointIO
from torch import nn
from torch.utils import serialization

from hyperlab import runs
from hyperlab.errors import ConfigError
from hyperlab.training.held_checkpoints import HeldWrites


def load_checkpoint(path: str, mmap: bool = False) -> dict:
    """weights_only=True: loading a checkpoint never runs code from it. mmap=True reads tensors lazily."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as error:  # truncated file, not a checkpoint, or a pickle that is not plain data
        raise ConfigError(f"ckpt_path={path!r} is not a readable checkpoint: {error}") from error
    if runs.CONFIG_KEY not in checkpoint:
        raise ConfigError(f"ckpt_path={path!r} has no '{runs.CONFIG_KEY}': it was not written by hyperlab's train.py")
    return checkpoint


# Where a `_target_` of a checkpoint's stored config lives now: checkpoints written before the package was grouped
# into folders (2026-11-30) name the old flat modules. Models and data modules did not move.
MOVED = {
    "hyperlab.losses.": "hyperlab.training.losses.",
    "hyperlab.schedules.": "hyperlab.training.schedules.",
    "hyperlab.callbacks.": "hyperlab.training.callbacks.",
    "hyperlab.checkpoints.": "hyperlab.training.checkpoints.",
    "hyperlab.compression.": "hyperlab.analysis.compression.",
    "hyperlab.augment.": "hyperlab.data.augment.",
}


def stored_config(checkpoint: dict) -> dict:
    """The run's config stored in `checkpoint`, its `_target_`s pointing at where those objects live now."""

    def moved(node):
        if isinstance(node, dict):
            return {key: moved(value) for key, value in node.items()}
        if isinstance(node, list):
            return [moved(value) for value in node]
        if isinstance(node, str):
            old = next((prefix for prefix in MOVED if node.startswith(prefix)), None)
            return MOVED[old] + node[len(old) :] if old else node
        return node

    return moved(checkpoint[runs.CONFIG_KEY])


def resume_from(resume: str, ckpt_path: str | None, train: bool, output_dir: Path) -> str | None:
    """The checkpoint a run continues from: resume=auto finds this command's newest last.ckpt; else ckpt_path."""
    if resume == "auto":
        found = runs.find_resume_checkpoint(output_dir)
        return str(found) if found else None
    return ckpt_path if train else None


def check_matches(module: nn.Module, checkpoint: dict, path: str) -> None:
    """The checkpoint's weights must have this model's names and shapes (e.g. not a CNN's for an MLP)."""
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in checkpoint["state_dict"].items()}
    if expected != found:
        differ = sorted(set(expected.items()) ^ set(found.items()))[:4]
        trained = checkpoint[runs.CONFIG_KEY].get("model", {}).get("_target_")
        raise ConfigError(
            f"ckpt_path={path!r} holds a different model ({trained}); first differences (name, shape): {differ}"
        )


class DirectCheckpointIO(TorchCheckpointIO):
    """torch.save streamed into a temporary file beside the target, then renamed over it: a reader (or a resume
    after kill -9) sees the old file or the new one, never half of one. Lightning's own atomic save serialises the
    whole checkpoint into memory first and copies it again on write; without the zip records' CRC-32 as well, a
    50 MB checkpoint takes 43 ms here instead of 98 ms, as long as one plain write of the same bytes
    (bench/step_throughput.py). A truncated file still fails to load (its zip directory is at the end)."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if storage_options is not None or not _is_local_file_protocol(str(path)):
            return super().save_checkpoint(checkpoint, path, storage_options)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        temporary = f"{path}.tmp"
        try:
            with open(temporary, "wb") as file, serialization.config.patch({"save.compute_crc32": False}):
                torch.save(checkpoint, file)
            os.replace(temporary, path)
        except BaseException:
            if os.path.exists(temporary):
                os.remove(temporary)
            raise


class BackgroundCheckpointIO(AsyncCheckpointIO):
    """Checkpoint writes off the training thread: Lightning's AsyncCheckpointIO (the state is cloned on the
    training thread, a point-in-time copy, then written by one worker thread, here with DirectCheckpointIO), with
    removals and links queued behind the writes on the same worker. So a file is never removed or linked before
    the write of it, or of an earlier file, has finished, and the training thread never waits on unlinking a 50 MB
    file. Lightning waits for the queue at the end of fit (teardown), also when fit ends in an exception."""

    def __init__(self, checkpoint_io=None):
        super().__init__(checkpoint_io or DirectCheckpointIO())

    def remove_checkpoint(self, path) -> None:
        self.submit(self.checkpoint_io.remove_checkpoint, path)

    def submit(self, fn, *args) -> None:
        self._ensure_setup()

        def run() -> None:
            try:
                fn(*args)
            except BaseException as error:  # raised on the training thread at the next save or at teardown
                self._error = error

        self._executor.submit(run)
        if self._error:
            raise self._error


def hard_link(target: str, link: str) -> None:
    """`link` becomes another name of `target`'s file, atomically (a temporary name renamed over it), so it never
    dangles when `target` is later removed and never exists half-made; a copy where hard links are not allowed."""
    temporary = f"{link}.tmp-link"
    if os.path.lexists(temporary):
        os.remove(temporary)
    try:
        os.link(target, temporary)
    except OSError:
        shutil.copyfile(target, temporary)
    os.replace(temporary, link)


class ModelCheckpoint(callbacks.ModelCheckpoint):
    """Lightning's ModelCheckpoint with `last.ckpt`, the resume point, holding the newest state at every save and
    costing one write per save, not two.

    Lightning 2.6 with `save_last=True` writes last.ckpt only in a step that also wrote a top-k checkpoint, as a
    second full write of the same state (and leaves last.ckpt at the last improvement otherwise); its
    `save_last="link"` links last.ckpt to the newest top-k file even when that file is older than this step.
    Here: when this step's state was just written as a top-k checkpoint, last.ckpt becomes a hard link to that
    file; otherwise last.ckpt is written itself.

    `write_every_s` > 0 holds the saves in memory and writes the files at most that often, at the end of fit and
    on an exception or SIGTERM (hyperlab.training.held_checkpoints); 0 writes every save as it happens.
    """

    def __init__(self, *args, write_every_s: float = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.held = HeldWrites(write_every_s) if write_every_s > 0 else None

    @property
    def state_key(self) -> str:
        # Lightning builds this string (a repr of five settings) for every callback hook it dispatches, about
        # seven times per training step; the settings never change after __init__, so build it once.
        if "_state_key" not in self.__dict__:
            self.__dict__["_state_key"] = super().state_key
        return self.__dict__["_state_key"]

    def _monitor_candidates(self, trainer) -> dict:
        # Lightning deep-copies the logged metrics (~90 us for five scalars; twice an epoch in the default run); a
        # clone of each tensor is the same copy at a tenth of the cost. Epoch and step as Lightning sets them.
        candidates = {k: v.clone() if torch.is_tensor(v) else v for k, v in trainer.callback_metrics.items()}
        epoch, step = candidates.get("epoch"), candidates.get("step")
        candidates["epoch"] = epoch.int() if torch.is_tensor(epoch) else torch.tensor(trainer.current_epoch)
        candidates["step"] = step.int() if torch.is_tensor(step) else torch.tensor(trainer.global_step)
        return candidates

    def _save_last_checkpoint(self, trainer, monitor_candidates: dict) -> None:
        if not self.save_last:
            return
        filepath = self.format_checkpoint_name(monitor_candidates, self.CHECKPOINT_NAME_LAST)
        version = self.STARTING_VERSION  # as Lightning: another run's last.ckpt in this folder is not overwritten
        while self._enable_version_counter and self.file_exists(filepath, trainer) and filepath != self.last_model_path:
            filepath = self.format_checkpoint_name(monitor_candidates, self.CHECKPOINT_NAME_LAST, ver=version)
            version += 1
        previous, self.last_model_path = self.last_model_path, filepath
        just_written = self._last_global_step_saved == trainer.global_step and self._last_checkpoint_saved
        if just_written and self._last_checkpoint_saved != filepath and _is_local_file_protocol(filepath):
            if self.held:
                self.held.link(self._last_checkpoint_saved, filepath)
            elif trainer.is_global_zero:
                self._link(trainer, self._last_checkpoint_saved, filepath)
        else:
            self._save_checkpoint(trainer, filepath)
        if previous and previous != filepath and self._should_remove_checkpoint(trainer, previous, filepath):
            self._remove_checkpoint(trainer, previous)

    @staticmethod
    def _link(trainer, target: str, filepath: str) -> None:
        io = trainer.strategy.checkpoint_io
        link = functools.partial(hard_link, target, filepath)
        io.submit(link) if isinstance(io, BackgroundCheckpointIO) else link()

    def _save_checkpoint(self, trainer, filepath: str) -> None:
        if not self.held:
            return super()._save_checkpoint(trainer, filepath)
        self.held.save(trainer._checkpoint_connector.dump_checkpoint(self.save_weights_only), filepath)
        self._last_global_step_saved, self._last_checkpoint_saved = trainer.global_step, filepath

    def _remove_checkpoint(self, trainer, filepath: str) -> None:
        self.held.remove(filepath) if self.held else super()._remove_checkpoint(trainer, filepath)

    def write_held(self, trainer, when_due: bool = False) -> None:
        """Write the held saves now, or `when_due` only if write_every_s has passed (rank 0's clock decides for
        every process)."""
        if not self.held:
            return
        due = (not when_due or self.held.due()) and bool(self.held.saves or self.held.links)
        if not trainer.strategy.broadcast(due):
            return
        link = functools.partial(self._link, trainer) if trainer.is_global_zero else lambda *_: None
        self.held.write(trainer.strategy.save_checkpoint, link, trainer.strategy.remove_checkpoint)
        trainer.strategy.barrier("ModelCheckpoint.write_held")
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.after_save_checkpoint(proxy(self))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._every_n_train_steps < 1 and self._train_time_interval is None:
            return  # saves only at epoch ends: Lightning's checks (~20 us, an enum compare among them) save nothing
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if self._last_global_step_saved == trainer.global_step:
            self.write_held(trainer, when_due=True)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_skipped(trainer)
            self.write_held(trainer, when_due=True)

    def on_validation_end(self, trainer, pl_module) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_skipped(trainer)
            self.write_held(trainer, when_due=True)

    def on_train_end(self, trainer, pl_module) -> None:
        super().on_train_end(trainer, pl_module)
        self.write_held(trainer)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        super().on_exception(trainer, pl_module, exception)
        self.write_held(trainer)  # what was held is a state training reached: keep it (SIGTERM arrives as one)

    def _save_last_if_skipped(self, trainer) -> None:
        """An epoch-end save at which no top-k file was written: Lightning skips last.ckpt then; write it."""
        due = self._every_n_epochs >= 1 and (trainer.current_epoch + 1) % self._every_n_epochs == 0
        if self.save_last and due and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
