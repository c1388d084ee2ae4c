"""Checkpoints: read safely (weights only, checked against the model before anything runs) and written off the
training thread, once per save."""

import functools
import os
import shutil

import torch
from lightning.fabric.utilities.cloud_io import _is_local_file_protocol
from lightning.pytorch import callbacks
from lightning.pytorch.plugins.io import AsyncCheckpointIO
from torch import nn

from hyperlab import runs
from hyperlab.config import ConfigError


def load_checkpoint(path: str, mmap: bool = False) -> dict:
    """weights_only=True: loading a checkpoint never runs code from it. mmap=True reads tensors lazily."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as error:  # truncated file, not a checkpoint, or a pickle that is not plain data
        raise ConfigError(f"ckpt_path={path!r} is not a readable checkpoint: {error}") from error
    if runs.CONFIG_KEY not in checkpoint:
        raise ConfigError(f"ckpt_path={path!r} has no '{runs.CONFIG_KEY}': it was not written by hyperlab's train.py")
    return checkpoint


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


class BackgroundCheckpointIO(AsyncCheckpointIO):
    """Checkpoint writes off the training thread: Lightning's AsyncCheckpointIO (the state is cloned on the
    training thread, a point-in-time copy, then written by one worker thread through Lightning's atomic
    temporary-file-and-rename save), with removals and links queued behind the writes on the same worker. So a
    file is never removed or linked before the write of it, or of an earlier file, has finished, and the training
    thread never waits on unlinking a 50 MB file. Lightning waits for the queue at the end of fit (teardown), also
    when fit ends in an exception."""

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
    """

    def _save_last_checkpoint(self, trainer, monitor_candidates: dict) -> None:
        if not self.save_last:
            return
        filepath = self.format_checkpoint_name(monitor_candidates, self.CHECKPOINT_NAME_LAST)
        previous, self.last_model_path = self.last_model_path, filepath
        just_written = self._last_global_step_saved == trainer.global_step and self._last_checkpoint_saved
        if just_written and self._last_checkpoint_saved != filepath and _is_local_file_protocol(filepath):
            if trainer.is_global_zero:
                io = trainer.strategy.checkpoint_io
                link = functools.partial(hard_link, self._last_checkpoint_saved, filepath)
                io.submit(link) if isinstance(io, BackgroundCheckpointIO) else link()
        else:
            self._save_checkpoint(trainer, filepath)
        if previous and previous != filepath and self._should_remove_checkpoint(trainer, previous, filepath):
            self._remove_checkpoint(trainer, previous)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_skipped(trainer)

    def on_validation_end(self, trainer, pl_module) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_skipped(trainer)

    def _save_last_if_skipped(self, trainer) -> None:
        """An epoch-end save at which no top-k file was written: Lightning skips last.ckpt then; write it."""
        due = self._every_n_epochs >= 1 and (trainer.current_epoch + 1) % self._every_n_epochs == 0
        if self.save_last and due and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
