"""hydra.sweeper.selection.baselines=compete: a classical baseline that beats the best net by more than the net's
standard error (the report's own verdict) is the selected model.

Its pipeline, refit on train + val when it was scored (GridSearchCV's refit; hyperlab.search.baselines), is stored
without pickle as `<sweep>/selected/model.skops` beside the data config, then scored by eval.py as any checkpoint
is: the same test/* metrics in selected/metrics.json and the same predictions.csv. `python eval.py
ckpt_path=<sweep>/selected/model.skops` scores it again.
"""

import shutil
from pathlib import Path

from hyperlab import runs
from hyperlab.search import refit

KEPT = "baselines"  # <sweep>/baselines/<library>-<name>.skops: every baseline's refit pipeline (compete only)


def kept_file(sweep_dir: Path, job: str) -> Path:
    return sweep_dir / KEPT / f"{job.replace(':', '-')}.skops"


def take(sweep_dir: Path, baseline: dict, data, search: dict) -> dict:
    """selected/ holds `baseline` (a baselines.json row) and eval.py's scores of it; returns its metrics.json. A
    selected/ already holding this baseline is read back; one holding something else is set aside first."""
    selected = sweep_dir / "selected"
    if (selected / "metrics.json").is_file() and runs.read_metrics(selected).get("refit/baseline") == baseline["job"]:
        return runs.read_metrics(selected)
    if selected.exists():
        refit.set_aside(selected)
    selected.mkdir(parents=True)
    from hyperlab.builders import classical  # torch loads only when a baseline is taken

    shutil.copy(kept_file(sweep_dir, baseline["job"]), selected / "model.skops")
    classical.save_data_config(selected, data)
    arguments = [f"ckpt_path={selected / 'model.skops'}"]
    return refit.run_into(selected, "eval.py", arguments, search, {"refit/baseline": baseline["job"]})


def line(baseline: dict, metrics: dict, metric: str, sweep_dir: Path) -> str:
    test = runs.test_key(metric)
    return (
        f"compete: {baseline['job']} beats the best net by more than one SE and is the selected model, "
        f"{test} {metrics.get(test, float('nan')):.4f}; python eval.py "
        f"ckpt_path={sweep_dir / 'selected' / 'model.skops'}"
    )
