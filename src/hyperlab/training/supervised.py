import math
from collections.abc import Callable, Iterable

import lightning as L
import torch
from torch import Tensor, nn
from torchmetrics import MeanAbsoluteError, MeanMetric, MeanSquaredError, MetricCollection, R2Score
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

from hyperlab.training.losses import distillation

OptimizerFactory = Callable[[Iterable[nn.Parameter] | list[dict]], torch.optim.Optimizer]
# (optimizer, total_steps) -> a Lightning lr_scheduler config or a list of them; see hyperlab.training.schedules
SchedulerFactory = Callable[[torch.optim.Optimizer, int], dict | list[dict]]


def classification_metrics(num_classes: int, prefix: str) -> MetricCollection:
    """Accuracy (micro) and macro precision / recall / F1 / AUROC, all fed class probabilities."""
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(num_classes, average="micro"),
            "precision": MulticlassPrecision(num_classes, average="macro"),
            "recall": MulticlassRecall(num_classes, average="macro"),
            "f1": MulticlassF1Score(num_classes, average="macro"),
            "auroc": MulticlassAUROC(num_classes, average="macro"),
        },
        prefix=prefix,
    )


# metrics.val=lean: what validation computes every epoch besides the loss (and whatever a callback, schedule,
# sweep or optimized_metric watches); metrics.val=full and every test pass compute the task's whole set
LEAN = {"classification": ("acc",), "regression": ("mse",), "language_model": ("acc",)}


def task_metrics(task: str, num_classes: int, prefix: str, keep: set[str] | None = None) -> MetricCollection:
    """What is scored per task: classification metrics; MSE/MAE/R^2 for regression (on the standardised target);
    next-token accuracy for a language model (its perplexity is exp(loss), the loss being nats per token).
    `keep`: only these names (e.g. {"acc"}); None: all."""
    if task == "regression":
        metrics = MetricCollection({"mse": MeanSquaredError(), "mae": MeanAbsoluteError(), "r2": R2Score()})
    elif task == "language_model":
        metrics = MetricCollection({"acc": MulticlassAccuracy(num_classes, average="micro")})
    else:
        metrics = classification_metrics(num_classes, "")
    kept = {name: metric for name, metric in metrics.items() if keep is None or name in keep}
    return MetricCollection(kept, prefix=prefix)


class Supervised(L.LightningModule):
    """Training of `net` under `loss` plus L1/L2 penalties, with the optimizer and LR schedule the caller built.

    Only plain values reach `save_hyperparameters`, so checkpoints load with `torch.load(weights_only=True)`:
    the network, loss, optimizer and scheduler are rebuilt from the run's config, never unpickled.
    With `tbptt_steps` (sequence models over per-position targets) it optimises manually: each batch is cut
    into chunks of that many steps, one optimizer step per chunk, the recurrent state carried across chunks
    but detached, so no gradient flows further back than `tbptt_steps` positions.
    """

    def __init__(
        self,
        net: nn.Module,
        loss: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        task: str = "classification",
        num_classes: int = 10,
        l1: float = 0.0,
        l2: float = 0.0,
        no_decay_bias_norm: bool = False,
        tbptt_steps: int | None = None,
        teacher: nn.Module | None = None,
        temperature: float = 4.0,
        alpha: float = 0.5,
        adversary: Callable[[nn.Module, nn.Module, Tensor, Tensor], Tensor] | None = None,
        lr_scales: dict[str, float] | None = None,
        bytes_per_token: dict[str, float] | None = None,
        val_metrics: str = "full",
        watched: Iterable[str] = (),
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["net", "loss", "optimizer", "scheduler", "teacher", "adversary"])
        self.net, self.loss = net, loss
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.task, self.l1, self.l2 = task, l1, l2
        self.no_decay_bias_norm, self.tbptt_steps = no_decay_bias_norm, tbptt_steps
        self.automatic_optimization = tbptt_steps is None
        # the teacher is not a submodule: never optimised, never in this model's checkpoints
        self.__dict__["teacher"] = teacher.eval().requires_grad_(False) if teacher is not None else None
        self.temperature, self.alpha, self.adversary = temperature, alpha, adversary
        self.lr_scales = lr_scales or {}  # per parameter of `net`: a learning-rate multiplier (muP)
        self.bytes_per_token = bytes_per_token or {}  # per split, for a language model's bits per byte
        self.lr: float | None = None  # set by Lightning's LR finder (tune.lr); None keeps the optimizer's own
        # A training step adds its loss and correct predictions into two on-device sums (in-place adds, no host
        # sync) and its sample count to a Python int; the epoch's means go through torchmetrics (synced across DDP
        # ranks) once, at its end. A torchmetrics update per step cost more than the default MLP's forward and
        # backward, and Lightning's self.log per call more than that (bench/step_throughput.py, profile_step.py).
        self.train_sums: tuple[Tensor, Tensor] | None = None  # (loss x n, correct) since the epoch began
        self.train_count = 0  # n: a shape, known on the host without a sync
        self.train_acc = MeanMetric() if task != "regression" else None
        self.train_loss, self.val_loss, self.test_loss = MeanMetric(), MeanMetric(), MeanMetric()
        # lean: a search runs thousands of validation epochs; AUROC, precision, recall and F1 are computed at test
        lean = {*LEAN[task], *(key.removeprefix("val/") for key in watched)} if val_metrics == "lean" else None
        self.val_metrics = task_metrics(task, num_classes, "val/", keep=lean)
        self.test_metrics = task_metrics(task, num_classes, "test/")

    # Plain attributes set many times a step: Lightning names the hook it is in (`_current_fx_name`, set and reset
    # around each of ~20 module and callback hooks a step) and a step's running sums. None is ever a parameter,
    # buffer or submodule, so nn.Module's __setattr__ checks for those (~1.3 us a call here) are skipped for them:
    # the default run's steps/s rises ~10% (bench/results.md, "Step throughput").
    PLAIN_ATTRIBUTES = frozenset({"_current_fx_name", "train_sums", "train_count"})

    def __setattr__(self, name: str, value) -> None:
        if name in self.PLAIN_ATTRIBUTES:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def penalty(self) -> Tensor | float:
        """l1 * sum|W| + l2 * sum W^2 over the weight matrices and kernels (biases and norm scales are free)."""
        if not (self.l1 or self.l2):
            return 0.0
        weights = [p for p in self.net.parameters() if p.ndim >= 2]
        return self.l1 * sum(w.abs().sum() for w in weights) + self.l2 * sum(w.pow(2).sum() for w in weights)

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        if self.tbptt_steps:
            return self._truncated_bptt(batch)
        x, y, *sample_weight = batch
        if self.adversary is not None:  # adversarial training: fit the worst case within the budget
            x = self.adversary(self.net, self.loss, x, y)
        output = self.net(x)
        loss = self.loss(output, y, *sample_weight)
        if self.teacher is not None:
            with torch.no_grad():
                teacher_logits = self.teacher(x)
            kd = distillation(output, teacher_logits, self.temperature)
            self.log("train/kd_loss", kd, on_step=False, on_epoch=True)
            loss = (1 - self.alpha) * loss + self.alpha * kd
        if self.l1 or self.l2:  # the penalties are not mixed with the teacher's term
            loss = loss + self.penalty()
        self._log_train(loss, output, y)
        return loss

    def on_fit_start(self) -> None:
        if self.teacher is not None:
            self.teacher.to(self.device)

    def _truncated_bptt(self, batch: tuple[Tensor, ...]) -> Tensor:
        x, y = batch[:2]
        optimizer = self.optimizers()
        state, total = None, 0.0
        for x_chunk, y_chunk in zip(x.split(self.tbptt_steps, 1), y.split(self.tbptt_steps, 1), strict=True):
            output, state = self.net.step(x_chunk, state)
            loss = self.loss(output, y_chunk) + self.penalty()
            optimizer.zero_grad()
            self.manual_backward(loss)
            optimizer.step()
            for config in self.trainer.lr_scheduler_configs:  # manual optimisation steps its schedules itself
                config.scheduler.step()
            state = tuple(s.detach() for s in state)  # the truncation
            total = total + loss.detach() * x_chunk.shape[1]
        loss = total / x.shape[1]
        self._log_train(loss, output, y_chunk)
        return loss

    def _log_train(self, loss: Tensor, output: Tensor, y: Tensor) -> None:
        # Two in-place adds into running sums (the Python number n is a kernel argument, not a copy to the device)
        n = y.numel()  # positions count for a language model
        if self.train_sums is None:
            self.train_sums, self.train_count = (loss.new_zeros((), dtype=torch.float32), y.new_zeros(())), 0
        total, correct = self.train_sums
        total.add_(loss.detach(), alpha=n)
        if self.train_acc is not None:
            output = output.detach()  # a loss's `predicted` (the argmax of its logits) skips the softmax per step
            classes = (
                self.loss.predicted(output) if hasattr(self.loss, "predicted") else self.loss.scores(output).argmax(1)
            )
            correct.add_((classes == y).sum())
        self.train_count += n

    def on_train_epoch_end(self) -> None:
        if self.train_sums is None:  # no step this epoch: a run resumed at an epoch's end re-runs that end
            return
        total, correct = torch.stack([s.float() for s in self.train_sums]).tolist()  # the one read of the sums
        n, self.train_sums = self.train_count, None
        self.train_loss.update(total / n, n)
        if self.train_acc is not None:
            self.train_acc.update(correct / n, n)
        extra = {"train/acc": self.train_acc} if self.train_acc is not None else {}
        self._log_epoch("train", extra)

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val", self.val_metrics)

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test", self.test_metrics)

    def _log_epoch(self, stage: str, metrics: MetricCollection | dict) -> None:
        """Compute (synced across DDP ranks by torchmetrics), log and reset the epoch's loss and metrics."""
        if isinstance(metrics, MetricCollection):
            values = metrics.compute()
        else:
            values = {name: metric.compute() for name, metric in metrics.items()}
        loss = getattr(self, f"{stage}_loss")
        nats = loss.compute()
        self.log(f"{stage}/loss", nats, prog_bar=True)
        if stage in self.bytes_per_token:  # nats per token -> bits per byte of the text: comparable across
            # tokenisers and with compressors (zlib, xz). The split's own bytes/token ratio (manifest.json).
            values[f"{stage}/bpb"] = nats / math.log(2) / self.bytes_per_token[stage]
        on_bar = {key: values.pop(key) for key in ("val/acc",) if key in values}  # what a person watches
        self.log_dict(on_bar, prog_bar=True)
        self.log_dict(values)
        loss.reset()
        for metric in metrics.values():
            metric.reset()

    def _evaluate(self, batch: tuple[Tensor, ...], metrics: MetricCollection, stage: str) -> None:
        x, y, *sample_weight = batch
        output = self.net(x)
        metrics.update(self.loss.scores(output), y)
        getattr(self, f"{stage}_loss").update(self.loss(output, y, *sample_weight), len(y))
        if hasattr(self.loss, "task_metrics"):  # multi-task: each head's own figures
            extra = self.loss.task_metrics(output, y)
            self.log_dict({f"{stage}/{k}": v for k, v in extra.items()}, on_epoch=True, sync_dist=True)

    def validation_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> None:
        self._evaluate(batch, self.val_metrics, "val")

    def test_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> None:
        self._evaluate(batch, self.test_metrics, "test")

    def predict_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        return self.loss.scores(self.net(batch[0]))  # (B, num_classes) probabilities; (B,) for regression

    def parameter_groups(self) -> list[dict]:
        """One group; or, with `no_decay_bias_norm`, biases and norm scales (1-D parameters) in a group with
        weight_decay 0, as is usual for transformers: decaying them only pulls the normalisation to 0. With
        `lr_scales` (muP), parameters are grouped further by their learning-rate multiplier (`lr_scale`)."""
        trainable = [p for p in self.parameters() if p.requires_grad]  # a frozen backbone joins later
        scale_of = {id(p): self.lr_scales.get(name, 1.0) for name, p in self.net.named_parameters()}
        groups: dict[tuple[bool, float], list[nn.Parameter]] = {}
        for p in trainable:
            decay = not (self.no_decay_bias_norm and p.ndim < 2)
            groups.setdefault((decay, scale_of.get(id(p), 1.0)), []).append(p)
        return [
            {"params": params, **({} if decay else {"weight_decay": 0.0}), **({"lr_scale": s} if s != 1.0 else {})}
            for (decay, s), params in groups.items()
        ]

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.parameter_groups(), **({"lr": self.lr} if self.lr else {}))
        for group in optimizer.param_groups:  # muP: lr x scale, weight decay / scale (lr x decay is the step)
            scale = group.get("lr_scale", 1.0)
            group["lr"] *= scale
            group["weight_decay"] = group.get("weight_decay", 0.0) / scale
        if self.scheduler_factory is None:
            return optimizer
        total_steps = int(self.trainer.estimated_stepping_batches)
        if self.tbptt_steps:  # one optimizer step per chunk of the (B, T) batch
            total_steps *= math.ceil(self.trainer.datamodule.input_shape[0] / self.tbptt_steps)
        schedulers = self.scheduler_factory(optimizer, total_steps)
        return [optimizer], schedulers if isinstance(schedulers, list) else [schedulers]
