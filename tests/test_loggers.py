"""Each logger option writes metrics that the tool's own reader finds."""

import json
from pathlib import Path

import pytest

from hyperlab.train import train


@pytest.fixture(scope="module")
def many_run(tmp_path_factory):
    from hyperlab.config.cli import compose

    out = tmp_path_factory.mktemp("loggers")
    train(compose(["logger=many", "trainer.max_epochs=2"], out))
    return out, json.loads((out / "metrics.json").read_text())


@pytest.mark.slow
def test_tensorboard_event_files_hold_the_metrics(many_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, metrics = many_run
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    assert {"train/loss", "val/loss", "val/acc", "test/acc", "lr-AdamW"} <= set(events.Tags()["scalars"])
    assert events.Scalars("test/acc")[-1].value == pytest.approx(metrics["test/acc"])


@pytest.mark.slow
def test_mlflow_sqlite_store_holds_the_metrics(many_run):
    from mlflow.tracking import MlflowClient

    out, metrics = many_run
    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("train").experiment_id])
    assert run.data.metrics["test/acc"] == pytest.approx(metrics["test/acc"])
    assert run.data.params["optimizer/_target_"] == "torch.optim.AdamW"


@pytest.mark.slow
def test_wandb_offline_record_file_holds_the_metrics(many_run):
    # wandb >= 0.2x keeps offline history in a binary record log that only `wandb sync` reads (no Python
    # reader ships with it); the metric keys are stored in it as plain strings.
    out, _ = many_run
    (record,) = Path(out / "wandb").glob("offline-run-*/run-*.wandb")
    data = record.read_bytes()
    assert all(key.encode() in data for key in ("train/loss", "val/loss", "val/acc", "test/acc"))


@pytest.mark.slow
def test_each_job_of_a_process_gets_its_own_wandb_run(tmp_path):
    """Under `-m` the jobs share one process: without finishing, job 2 would log into job 1's W&B run."""
    from hyperlab.config.cli import compose

    for job in ("0", "1"):
        train(compose(["logger=wandb", "trainer.max_epochs=1", "callbacks=none"], tmp_path / job))
    runs_0 = list((tmp_path / "0" / "wandb").glob("offline-run-*"))
    runs_1 = list((tmp_path / "1" / "wandb").glob("offline-run-*"))
    assert len(runs_0) == len(runs_1) == 1 and runs_0[0].name != runs_1[0].name


@pytest.mark.slow
def test_csv_metrics_hold_the_final_test_metrics(many_run):
    import csv

    out, metrics = many_run
    with open(out / "csv" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("test/acc")]
    assert float(rows[-1]["test/acc"]) == pytest.approx(metrics["test/acc"])
