"""The language-model path: tokens/s of train.py against a hand-written loop, and the compressors' bits per byte.

    python bench/lm_throughput.py [--steps 60] [--repeats 3]

Throughput: `experiment=gpt_stdlib`'s GPT (2.6M parameters, BPE 4096, context 128, batch 32) trained for `--steps`
optimizer steps, through train.py's objects (build_module + build_trainer: fused AdamW, warmup + cosine, clipping,
checkpoint, logger, progress bar; no validation pass) against a hand-written loop over the same network and the same
memory-mapped batches (fused AdamW, the same clipping, no schedule). Tokens/s = steps x 32 x 128 / fit seconds;
the two interleaved, `--repeats` rounds, medians.
Compressors: zlib -9 and xz -9e on the validation files of data=stdlib (the same bytes val/bpb is measured on),
and xz -9e given the training files as context (compressed size of train + val minus that of train).
"""

import argparse
import copy
import logging
import lzma
import statistics
import sysconfig
import tempfile
import time
import warnings
import zlib
from pathlib import Path

import torch
import torch.nn.functional as F
from report import publish

from hyperlab.builders import build_module, build_trainer, run_callbacks
from hyperlab.config.cli import compose
from hyperlab.data.tokens import read_text

warnings.filterwarnings("ignore")
logging.getLogger("lightning").setLevel(logging.ERROR)
TRAIN_ONLY = ["++trainer.limit_val_batches=0", "++trainer.num_sanity_val_steps=0", "test=false"]


def built(steps: int):
    cfg = compose(
        ["experiment=gpt_stdlib", f"trainer.max_steps={steps}", "scheduler.warmup_steps=10", *TRAIN_ONLY],
        tempfile.mkdtemp(),
    )
    datamodule, module = build_module(cfg)
    return cfg, datamodule, module


def hyperlab(steps: int):
    cfg, datamodule, module = built(steps)
    trainer = build_trainer(cfg.trainer, cfg.callbacks, cfg.logger, run_callbacks({}, cfg.optimized_metric))

    def fit() -> int:
        trainer.fit(module, datamodule=datamodule)
        return trainer.global_step

    return fit


def hand_written(steps: int):
    _, datamodule, module = built(steps)
    net = copy.deepcopy(module.net)
    optimizer = torch.optim.AdamW(net.parameters(), lr=2e-3, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    batches = datamodule.train_dataloader()

    def fit() -> int:
        done = 0
        while done < steps:
            for x, y in batches:
                loss = F.cross_entropy(net(x).flatten(0, 1), y.flatten())
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                optimizer.step()
                done += 1
                if done == steps:
                    break
        return done

    return fit


def compressors(datamodule) -> dict[str, float]:
    """Bits per byte of the validation files under zlib -9, xz -9e, and xz -9e with the training files as context."""
    root = Path(sysconfig.get_paths()["stdlib"])
    splits = datamodule.manifest["splits"]
    val, train = ("".join(read_text(root / name) for name in splits[s]["files"]).encode() for s in ("val", "train"))

    def xz(data: bytes) -> int:
        return len(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME))

    return {
        "zlib -9": 8 * len(zlib.compress(val, 9)) / len(val),
        "xz -9e": 8 * xz(val) / len(val),
        "xz -9e, training files as context": 8 * (xz(train + val) - xz(train)) / len(val),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    variants = {"hand-written loop": hand_written, "train.py (experiment=gpt_stdlib)": hyperlab}
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, make in variants.items():
            fit = make(args.steps)
            start = time.perf_counter()
            steps = fit()
            rates[name].append(steps * 32 * 128 / (time.perf_counter() - start))
    medians = {name: statistics.median(r) for name, r in rates.items()}
    loop = medians["hand-written loop"]
    body = [
        f"{args.steps} optimizer steps of 32 x 128 tokens, {args.repeats} interleaved rounds, medians.",
        "",
        "| variant | tokens/s (median) | min..max | vs loop |",
        "|---|---|---|---|",
    ]
    body += [
        f"| {name} | {medians[name]:.0f} | {min(r):.0f}..{max(r):.0f} | {medians[name] / loop:.2f}x |"
        for name, r in rates.items()
    ]
    _, datamodule, _ = built(1)
    body += ["", "Target: train.py within 10% of the loop (>= 0.90x).", "", "| compressor | val bits per byte |"]
    body += ["|---|---|"] + [f"| {name} | {bpb:.3f} |" for name, bpb in compressors(datamodule).items()]
    publish("Language-model throughput", "python bench/lm_throughput.py", body)


if __name__ == "__main__":
    main()
