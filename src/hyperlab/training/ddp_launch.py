"""DDP under `-m`: Lightning's launcher re-runs `sys.argv` in each child, which under a sweep is the whole sweep."""

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from omegaconf import read_write

from hyperlab.config.cli import in_multirun


@contextmanager
def one_job_per_ddp_launch(output_dir: Path) -> Iterator[None]:
    """Under `-m`, make Lightning's DDP children run this job only, then leave the process clean for the next.

    Lightning's DDP launcher starts each child with `sys.argv[1:]` and `hydra.run.dir=<HydraConfig run.dir>`:
    under `-m` that would re-run the whole sweep in every rank (each sampling its own parameters) and write
    outside the job's directory. The children get this job's own overrides and directory instead; afterwards the
    process group and the environment variables Lightning set (LOCAL_RANK, WORLD_SIZE, MASTER_PORT, ...) go,
    else the next job of the sweep would take itself for a child.
    """
    from hydra.core.hydra_config import HydraConfig

    if not in_multirun():
        yield
        return
    hydra_cfg = HydraConfig.get()
    argv, environ, run_dir = list(sys.argv), dict(os.environ), hydra_cfg.run.dir
    # hydra.* overrides too (e.g. hydra.searchpath), but not hydra.mode=MULTIRUN: a child runs one job
    hydra_overrides = [o for o in hydra_cfg.overrides.hydra if not o.startswith("hydra.mode=")]
    sys.argv = [argv[0], *hydra_overrides, *hydra_cfg.overrides.task]
    with read_write(hydra_cfg):
        hydra_cfg.run.dir = str(output_dir)
    try:
        yield
    finally:
        sys.argv = argv
        with read_write(hydra_cfg):
            hydra_cfg.run.dir = run_dir
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        os.environ.clear()
        os.environ.update(environ)
