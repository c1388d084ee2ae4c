"""Where a training step's time goes in hyperlab's default path: a cProfile of `trainer.fit`, in buckets.

    python bench/profile_step.py [--epochs 20]

cProfile slows Python code more than the C++ kernels, so the shares overstate the Python side somewhat; the
step-throughput benchmark gives the unprofiled rates. Buckets are cumulative times of non-nested functions;
"Lightning loop" is the rest of fit (hook dispatch, closures, optimizer wrappers, result bookkeeping).
"""

import argparse
import cProfile
import logging
import pstats
import tempfile
import warnings

from report import publish

from hyperlab.builders import build_module, build_trainer, run_callbacks
from hyperlab.config.cli import compose

warnings.filterwarnings("ignore")
logging.getLogger("lightning").setLevel(logging.ERROR)

BUCKETS = {  # (file suffix, function name) whose cumulative time makes the bucket
    "forward + loss + metric updates (training_step)": [("hyperlab/supervised.py", "training_step")],
    "backward": [("torch/_tensor.py", "backward")],
    "AdamW update": [("torch/optim/adam.py", "adam")],
    "validation loop": [("loops/evaluation_loop.py", "run")],
    "checkpoint saving": [("callbacks/model_checkpoint.py", "_save_checkpoint")],
    "progress bar": [("progress/rich_progress.py", "on_train_batch_end")],
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    overrides = [
        f"trainer.max_epochs={args.epochs}",
        "callbacks.early_stopping=null",
        "++trainer.num_sanity_val_steps=0",
    ]
    cfg = compose(overrides, tempfile.mkdtemp())
    datamodule, module = build_module(cfg)
    trainer = build_trainer(cfg.trainer, cfg.callbacks, cfg.logger, run_callbacks({}, cfg.optimized_metric))
    profile = cProfile.Profile()
    profile.runcall(trainer.fit, module, datamodule=datamodule)
    stats = pstats.Stats(profile).stats
    cumulative = lambda file, name: sum(  # noqa: E731
        v[3] for (f, _, n), v in stats.items() if f.endswith(file) and n == name
    )
    total = cumulative("lightning/pytorch/trainer/trainer.py", "fit")
    shares = {bucket: sum(cumulative(f, n) for f, n in keys) for bucket, keys in BUCKETS.items()}
    shares["Lightning loop (the rest)"] = total - sum(shares.values())
    steps = trainer.global_step
    body = [f"{steps} steps, {total:.2f} s under cProfile ({1000 * total / steps:.2f} ms per step).", ""]
    body += ["| bucket | s | share | ms per step |", "|---|---|---|---|"]
    body += [f"| {b} | {s:.2f} | {s / total:.0%} | {1000 * s / steps:.2f} |" for b, s in shares.items()]
    publish("Where the step time goes", "python bench/profile_step.py", body)


if __name__ == "__main__":
    main()
