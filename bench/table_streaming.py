"""A table larger than memory: peak memory of data=table with data.convert=true (chunks into a memory-mapped shard)
against the in-memory path, on a CSV and on one 4x larger.

    python bench/table_streaming.py [--rows 100000]     # writes "Table streaming" into bench/results.md

The CSV: 16 numeric columns and 4 string columns (one with 1000 levels), 5% of cells missing, a label from two of
them. Each measurement is a fresh process that builds the data module (the conversion included for the streamed
path) and reads one epoch of training batches; the figure is its peak resident set (imports included).
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from report import publish

ROOT = Path(__file__).resolve().parents[1]


def write_table(path: Path, rows: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    numbers = {f"x{i}": rng.normal(size=rows) for i in range(16)}
    words = {f"s{i}": rng.choice([f"w{j}" for j in range(6)], rows) for i in range(3)}
    frame = pd.DataFrame({**numbers, **words, "city": rng.choice([f"c{j}" for j in range(1000)], rows)})
    frame["label"] = np.where((frame["s0"] == "w1") | (frame["x0"] > 1), "yes", "no")
    for column in frame.columns[:-1]:
        frame.loc[rng.random(rows) < 0.05, column] = None
    frame.to_csv(path, index=False)
    return path


def peak_rss_mb(path: Path, convert: bool, cache: Path) -> dict:
    code = f"""
import json, resource, sys, time
sys.path.insert(0, {str(ROOT)!r})
from hydra.utils import instantiate
from hyperlab.config.cli import compose
cfg = compose(["data=table", "data.path={path}", "data.target=label", "data.convert={str(convert).lower()}",
               "data.cache_dir={cache}", "data.device_resident=false", "batch_size=1024"], {str(cache)!r})
start = time.perf_counter()
dm = instantiate(cfg.data)
dm.setup("fit")
built = time.perf_counter() - start
for batch in dm.train_dataloader():
    dm.on_after_batch_transfer(batch, 0)
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
now = {{key: int(status[key].split()[0]) / 1024 for key in ("RssAnon", "RssFile")}}
print(json.dumps({{"rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "setup_s": built,
                  "width": dm.input_shape[0], **now}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="hyperlab-table-"))
    sizes = {n: write_table(root / f"t{n}.csv", n) for n in (args.rows, 4 * args.rows)}
    body = [
        "Peak resident set of a fresh process that builds the data module and reads one epoch (MiB; torch, "
        "Lightning and pandas imported); at the epoch's end, its anonymous (private) and file-backed resident "
        "memory (the memory-mapped shard's pages read are file-backed: the OS reclaims them as it needs); setup: "
        "reading, splitting, encoding (and writing the shard) in seconds.",
        "",
        "| rows | CSV MB | path | peak RSS MiB | anonymous at end MiB | file-backed at end MiB | setup s | width |",
        "|---|---|---|---|---|---|---|---|",
    ]
    results = {}
    for rows, path in sizes.items():
        for convert in (False, True):
            figures = peak_rss_mb(path, convert, root / f"cache-{rows}-{convert}")
            results[rows, convert] = figures["RssAnon"]
            name = "data.convert=true (streamed)" if convert else "in memory"
            body.append(
                f"| {rows} | {path.stat().st_size / 1e6:.0f} | {name} | {figures['rss']:.0f} | "
                f"{figures['RssAnon']:.0f} | {figures['RssFile']:.0f} | {figures['setup_s']:.1f} | {figures['width']} |"
            )
    small, large = args.rows, 4 * args.rows
    body += [
        "",
        "4x the rows, anonymous memory at the epoch's end: "
        f"in memory {results[large, False] / results[small, False]:.2f}x, "
        f"streamed {results[large, True] / results[small, True]:.2f}x.",
    ]
    publish("Table streaming", "python bench/table_streaming.py", body)


if __name__ == "__main__":
    main()
