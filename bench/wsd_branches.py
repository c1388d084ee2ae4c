"""Warmup-stable-decay with cooldown branches against cosine runs from scratch (issue 30).

    python bench/wsd_branches.py [--seeds 2] [--budgets 250 500 1000]

The GPT of hparams_search=scaling at width 128 (byte tokens, context 64, batch 32, 50-step epochs, LR 2^-8, 25
warmup steps): one `scheduler=wsd scheduler.budgets=[...]` run (a stable run and a 20% 1-sqrt cooldown branch per
budget) against `scheduler=cosine` trained from scratch for each budget, each seed. Per budget: val/bpb of the
branch and of the cosine run; the cost: the WSD command's wall time against the longest cosine run's and against
all of them. Runs and partial results stay under logs/bench/wsd (a stopped bench resumes); writes the "WSD and
cooldown branches" section of bench/results.md.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from report import kept, publish

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "logs" / "bench" / "wsd"
COMMON = [
    "data=stdlib",
    "data.tokenizer=bytes",
    "data.context=64",
    "batch_size=32",
    "data.batches_per_epoch=50",
    "data.eval_windows=256",
    "model=gpt",
    "model.depth=2",
    "model.heads=4",
    "model.width=128",
    f"lr={2.0**-8!r}",
    "weight_decay=0.1",
    "no_decay_bias_norm=true",
    "optimizer.betas=[0.9,0.95]",
    "trainer.gradient_clip_val=1.0",
    "optimized_metric=val/bpb",
    "callbacks.early_stopping=null",
    "callbacks.rich_progress_bar=null",
    "test=false",
]


def train(run_dir: Path, *overrides: str) -> dict:
    """metrics.json of one `python train.py` run, with the command's wall seconds."""
    start = time.perf_counter()
    command = [sys.executable, "train.py", *COMMON, *overrides, f"hydra.run.dir={run_dir}"]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    return {**json.loads((run_dir / "metrics.json").read_text()), "wall_s": time.perf_counter() - start}


def wsd(seed: int, budgets: list[int]) -> dict:
    metrics = train(
        FOLDER / f"wsd_{seed}",
        f"seed={seed}",
        "scheduler=wsd",
        "scheduler.warmup_steps=25",
        f"scheduler.budgets=[{','.join(map(str, budgets))}]",
        "scheduler.decay_fraction=0.2",
    )
    return {"wall_s": metrics["wall_s"], **{b: m["val/bpb"] for b, m in metrics["budgets"].items()}}


def cosine(seed: int, budget: int) -> dict:
    metrics = train(
        FOLDER / f"cosine_{seed}_{budget}",
        f"seed={seed}",
        "scheduler=cosine",
        "scheduler.warmup_steps=25",
        f"trainer.max_steps={budget}",
        "trainer.max_epochs=-1",
    )
    return {"wall_s": metrics["wall_s"], "val/bpb": metrics["val/bpb"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--budgets", type=int, nargs="+", default=[250, 500, 1000])
    args = parser.parse_args()
    FOLDER.mkdir(parents=True, exist_ok=True)
    partial = FOLDER / "partial.json"  # kept results: a stopped bench resumes
    runs = {}
    for seed in range(args.seeds):
        runs[seed] = {"wsd": kept(partial, f"{seed}/wsd", lambda seed=seed: wsd(seed, args.budgets))}
        for b in args.budgets:
            runs[seed][b] = kept(partial, f"{seed}/cosine/{b}", lambda seed=seed, b=b: cosine(seed, b))
    rows = [
        f"GPT width 128 on byte tokens, LR 2^-8, {args.seeds} seeds (mean over seeds); budgets in optimizer steps of "
        "2048 tokens; WSD: one command, `scheduler=wsd scheduler.budgets=[...]` (stable run + a 20% 1-sqrt cooldown "
        "per budget); cosine: a run from scratch per budget. Both run as `python train.py` on this machine.",
        "",
        "| budget (steps) | tokens | cosine val/bpb | WSD branch val/bpb | branch vs cosine |",
        "|---|---|---|---|---|",
    ]
    for b in args.budgets:
        cos = statistics.mean(runs[s][b]["val/bpb"] for s in runs)
        branch = statistics.mean(runs[s]["wsd"][str(b)] for s in runs)
        rows.append(f"| {b} | {b * 2048 / 1e6:.2f}M | {cos:.4f} | {branch:.4f} | {branch / cos - 1:+.2%} |")
    wsd_s = statistics.mean(runs[s]["wsd"]["wall_s"] for s in runs)
    longest = statistics.mean(runs[s][max(args.budgets)]["wall_s"] for s in runs)
    every = statistics.mean(sum(runs[s][b]["wall_s"] for b in args.budgets) for s in runs)
    rows += [
        "",
        f"Cost (wall, mean over seeds, measured in the same run): the WSD command {wsd_s:.0f} s = "
        f"{wsd_s / longest:.2f}x the longest cosine run alone ({longest:.0f} s; target <= 1.5x) and "
        f"{wsd_s / every:.2f}x the {len(args.budgets)} cosine runs ({every:.0f} s).",
    ]
    publish("WSD and cooldown branches", f"python bench/wsd_branches.py --seeds {args.seeds}", rows)


if __name__ == "__main__":
    main()
