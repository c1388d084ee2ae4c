"""Callbacks that every run gets (they make checkpoints self-describing and resumes exact), and the progress bar."""

import random

import lightning as L
import torch
from lightning.pytorch import callbacks

from hyperlab import runs
from hyperlab.errors import ConfigError, ReportedError


class RunState(L.Callback):
    """What a checkpoint holds beyond Lightning's own state: the run's resolved config (plain dicts and lists, for
    eval.py and for a resume to rebuild the run) and the global torch (CPU and CUDA) and Python RNG states, restored
    on resume so that dropout and other random ops after it draw what an unbroken run would have drawn.

    Lightning restores model, optimizer, loops and callbacks but not RNG states. The states are applied at
    `on_train_start`, after the sanity-check validation, which itself draws from the global RNG (a DataLoader
    iterator takes a base seed). All states are tensors or ints, so `weights_only=True` loading still works.
    One callback, not two: Lightning calls every callback at ~10 hooks a step (~2 us each on the default run).
    """

    def __init__(self, config: dict):
        self.config = config
        self.pending: dict | None = None

    @property
    def state_key(self) -> str:
        return "RestoreRNG"  # the callback's name in checkpoints written before 2026-12-06: they still resume

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint[runs.CONFIG_KEY] = self.config

    def state_dict(self) -> dict:
        version, state, gauss = random.getstate()
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            # the Mersenne Twister's 625 words as one tensor, not 625 Python ints: a save copies and pickles it
            "python": [version, torch.tensor(state, dtype=torch.int64), gauss],
        }

    def load_state_dict(self, state_dict: dict) -> None:
        self.pending = state_dict

    def on_train_start(self, trainer, pl_module) -> None:
        if self.pending is None:
            return
        torch.set_rng_state(self.pending["torch"])
        if self.pending["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(self.pending["cuda"])
        version, state, gauss = self.pending["python"]  # a list of ints in checkpoints before 2026-12-06
        random.setstate((version, tuple(state.tolist() if torch.is_tensor(state) else state), gauss))
        self.pending = None


class NonFiniteLossError(ReportedError, FloatingPointError):
    """The training loss became NaN or inf."""


class StopOnNonFiniteLoss(L.Callback):
    """Stop at a NaN/inf training loss with an error that names the window of steps it appeared in and the last
    good checkpoint.

    Each step adds `0 x loss` into an on-device flag: one in-place add, no host sync (on a GPU a per-step
    `bool(loss)` stalls the kernel queue). 0 x a finite loss is 0 and 0 x nan or inf is nan (IEEE 754), so the flag
    stays 0 until a non-finite loss and nan after it; unlike a sum of losses it cannot overflow. The flag is read
    every `trainer.log_every_n_steps` steps, at the end of each training epoch and before any checkpoint is
    written, so a non-finite state is never saved. Lightning writes no checkpoint when fit ends in an exception,
    so `last.ckpt` stays the last good state; inside a sweep the exception marks the trial FAILED and the sweep
    goes on.
    """

    def __init__(self):
        self.flag: torch.Tensor | None = None
        self.checked_step = 0  # every step up to this one had a finite loss

    def on_train_start(self, trainer, pl_module) -> None:  # a new fit (after the tuner's, or resumed at step k)
        self.flag, self.checked_step = None, trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        if self.flag is None:
            self.flag = loss.new_zeros((), dtype=torch.float32)
        self.flag.add_(loss.detach(), alpha=0)
        if trainer.global_step % max(trainer.log_every_n_steps, 1) == 0:
            self.check(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.check(trainer)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        self.check(trainer)

    def check(self, trainer) -> None:
        if self.flag is None:
            return
        if not bool(self.flag.isnan()):
            self.checked_step, self.flag = trainer.global_step, None
            return
        checkpoint = trainer.checkpoint_callback
        last = getattr(checkpoint, "last_model_path", "") or "none written yet"
        raise NonFiniteLossError(
            f"train loss became nan or inf between step {self.checked_step + 1} and step {trainer.global_step} "
            f"(epoch {trainer.current_epoch}); training stopped. Last good checkpoint: {last}"
        )


class CheckMonitors(L.Callback):
    """Before the first training step, every metric that something monitors must exist.

    ModelCheckpoint, EarlyStopping, a plateau schedule or the study's trial monitoring a key that is never
    logged would otherwise fail, or silently do nothing, after a whole epoch. The sanity-check validation runs
    before training and logs every `val/*` key, so the check happens there (train/* keys appear only later).
    """

    def __init__(self, optimized_metric: str | None = None):
        self.optimized_metric = optimized_metric  # what train() returns to a sweeper, e.g. val/r2 for regression

    def on_sanity_check_end(self, trainer, pl_module) -> None:
        watchers = [(type(cb).__name__, getattr(cb, "monitor", None)) for cb in trainer.callbacks]
        if self.optimized_metric and self.optimized_metric.startswith("val/"):
            watchers.append(("optimized_metric", self.optimized_metric))
        watchers += [(type(c.scheduler).__name__, c.monitor) for c in trainer.lr_scheduler_configs]
        logged = sorted(trainer.callback_metrics)
        for name, key in watchers:
            if key and not key.startswith("train/") and key not in logged:
                raise ConfigError(f"{name} monitors {key!r}, which is never logged; logged: {', '.join(logged)}")


class GradNormLogger(L.Callback):
    """Log the gradient norms the optimizer is about to use (after any clipping by Lightning happens later):
    `grad/norm_total` and `grad/norm/<parameter>` (lightning.pytorch.utilities.grad_norm), every step."""

    def __init__(self, norm_type: float = 2.0):
        self.norm_type = norm_type

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        from lightning.pytorch.utilities import grad_norm

        norms = grad_norm(pl_module.net, norm_type=self.norm_type)
        total = norms.pop(f"grad_{float(self.norm_type)}_norm_total")
        pl_module.log("grad/norm_total", total, on_step=True, on_epoch=False)
        prefix = f"grad_{float(self.norm_type)}_norm/"
        pl_module.log_dict(
            {f"grad/norm/{k.removeprefix(prefix)}": v for k, v in norms.items()}, on_step=True, on_epoch=False
        )


class WeightHistograms(L.Callback):
    """A histogram of every parameter tensor per training epoch, written with TensorBoard's `add_histogram`."""

    def on_fit_start(self, trainer, pl_module) -> None:
        from lightning.pytorch.loggers import TensorBoardLogger

        self.writers = [lg.experiment for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
        if not self.writers:
            raise ConfigError("callbacks.weight_histograms writes to TensorBoard: add logger=tensorboard (or many)")

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        for name, parameter in pl_module.net.named_parameters():
            for writer in self.writers:
                writer.add_histogram(f"weights/{name}", parameter.detach().cpu(), global_step=trainer.current_epoch)


class RichProgressBar(callbacks.RichProgressBar):
    """Lightning's rich progress bar, brought up to date every `every_n_batches` batches and at a loop's last batch
    rather than after every batch (its task's count, the metrics read from the trainer, a redraw request), drawn
    by its refresh thread only, and stopped without waiting for that thread. What it costs a default epoch:
    bench/results.md, "Callback costs"."""

    def __init__(self, every_n_batches: int = 10, **kwargs):
        super().__init__(**kwargs)
        self.every_n_batches = every_n_batches

    def _due(self, batch_idx: int, total: float) -> bool:
        return (batch_idx + 1) % self.every_n_batches == 0 or batch_idx + 1 == total

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.is_disabled or self._due(batch_idx, self.total_train_batches):
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        # disabled (e.g. on DDP ranks other than 0) Lightning tracks no dataloader, and its own hook returns at once
        if self.is_disabled or self._due(batch_idx, self.total_val_batches_current_dataloader):
            super().on_validation_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        # Lightning adds a new validation task at every validation run and only hides the old one: a run of n
        # epochs keeps n tasks, each walked at every frame. Reset the one there is instead.
        if self.is_disabled or trainer.sanity_checking or self.val_progress_bar_id is None:
            return super().on_validation_batch_start(trainer, pl_module, batch, batch_idx, dataloader_idx)
        if self.has_dataloader_changed(dataloader_idx):
            total = self.total_val_batches_current_dataloader
            self.progress.reset(self.val_progress_bar_id, total=total, visible=False)
            self.refresh()

    def _init_progress(self, trainer) -> None:
        super()._init_progress(trainer)
        progress = self.progress
        if progress is not None and getattr(progress.live, "_refresh_thread", None) is not None:
            # rich redraws the whole display on the training thread whenever a task is added or reset (every
            # epoch: the training task's and the validation task's), ~0.2 ms each here; ask the refresh thread
            # instead, which draws the change within 1/refresh_rate s. The final frame is drawn at stop.
            progress.refresh = progress.soft_refresh

    def _stop_progress(self) -> None:
        # Lightning's refresh thread sleeps 1/refresh_rate s between looks, and its stop joins it: up to 33 ms at
        # 30 Hz, on average half that, at the end of every fit and test. Tell the thread it is done (it draws no
        # more) and leave it to finish its sleep on its own (a daemon); the final frame is still drawn by stop.
        live = getattr(self.progress, "live", None)
        thread = getattr(live, "_refresh_thread", None)
        if thread is not None and not self._progress_stopped:
            thread.refresh_cond = False
            thread.done.set()
            live._refresh_thread = None
        super()._stop_progress()
