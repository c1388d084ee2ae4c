"""Host time of each of hyperlab's LightningModule hooks per call, without a profiler: where the module's cost per
epoch goes beyond Lightning's floor (bench/step_throughput.py, "Per fit and per epoch").

    python bench/hook_times.py [--device cuda] [--setting resnet]

hyperlab's module with no checkpoints, LR monitor, progress bar or logger (step_throughput.BARE), 8 epochs after
one warm-up fit; each hook wrapped in a wall-clock timer. On a GPU a hook's host time includes any wait for the
device that it causes. Run twice: the AUROC keeping its predictions on the device (the default) and on the CPU
(torchmetrics' `compute_on_cpu`, not adopted: its CPU list states cannot be gathered across GPUs over NCCL,
torchmetrics issues #1088 and #2477, both open).
"""

import argparse
import collections
import time

import step_throughput as st
import torch
from report import publish
from torchmetrics.classification import MulticlassAUROC

from hyperlab.training import supervised

HOOKS = ["_log_train", "validation_step", "on_validation_epoch_end", "on_train_epoch_end"]


def timed(seconds: collections.Counter, calls: collections.Counter) -> None:
    for name in HOOKS:
        hook = getattr(supervised.Supervised, name)

        def wrapper(*args, _hook=hook, _name=name, **kwargs):
            start = time.perf_counter()
            result = _hook(*args, **kwargs)
            seconds[_name] += time.perf_counter() - start
            calls[_name] += 1
            return result

        setattr(supervised.Supervised, name, wrapper)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--setting", default="resnet", choices=list(st.SETTINGS))
    args = parser.parse_args()
    st.DEVICE = torch.device(args.device)
    seconds, calls = collections.Counter(), collections.Counter()
    timed(seconds, calls)
    default_metrics = supervised.classification_metrics
    overrides, _ = st.SETTINGS[args.setting]
    rows = ["| AUROC predictions kept | " + " | ".join(HOOKS) + " |", "|---" * (len(HOOKS) + 1) + "|"]
    for label, on_cpu in [("on the training device (default)", False), ("on the CPU (compute_on_cpu)", True)]:

        def metrics(num_classes: int, prefix: str, on_cpu: bool = on_cpu):
            collection = default_metrics(num_classes, prefix)
            collection["auroc"] = MulticlassAUROC(num_classes, average="macro", compute_on_cpu=on_cpu)
            return collection

        supervised.classification_metrics = metrics
        for _ in range(2):  # the first fit warms up (allocator, kernels); the second is kept
            seconds.clear(), calls.clear()
            st.hyperlab([*overrides, *st.BARE], 8)()
        rows.append(f"| {label} | " + " | ".join(f"{1e3 * seconds[h] / calls[h]:.2f} ms" for h in HOOKS) + " |")
    body = [
        f"{args.setting} ({' '.join(overrides) or 'default config'}), 8 epochs of 20 steps, on {args.device}; host "
        "ms per call (`_log_train` runs every step, the others once an epoch).",
        "",
        *rows,
    ]
    suffix = " (GPU)" if args.device == "cuda" else ""
    command = f"python bench/hook_times.py --device {args.device} --setting {args.setting}"
    publish(f"Host time per hook{suffix}", command, body)


if __name__ == "__main__":
    main()
