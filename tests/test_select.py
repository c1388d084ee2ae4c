"""The model-selection report reads a sweep through metrics.json and overrides.yaml only."""

import csv
import json
import shutil
import subprocess
import sys

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from hyperlab import select
from tests.conftest import CONF, ROOT

JOBS = {  # job: (val/acc, FLOPs, overrides)
    "0": (0.95, 1000, ["optimizer=sgd", "lr=0.05", "model.width=32"]),
    "1": (0.97, 5000, ["optimizer=adamw", "lr=0.003", "model.width=256", "trial.number=1"]),
    "2": (0.93, 4000, ["optimizer=adamw", "lr=0.001", "model.width=128"]),  # dominated by job 0
    "3": (0.90, 800, ["optimizer=sgd", "lr=0.01", "model.width=16"]),
}


@pytest.fixture
def sweep_dir(tmp_path):
    for job, (acc, flops, overrides) in JOBS.items():
        (tmp_path / job / ".hydra").mkdir(parents=True)
        metrics = {
            "val/acc": acc,
            "model/flops": flops,
            "model/params": flops // 2,
            "time/train_s": 1.0,
            "memory/peak_mb": 500.0,
        }
        (tmp_path / job / "metrics.json").write_text(json.dumps(metrics))
        (tmp_path / job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (tmp_path / "4").mkdir()  # a job that never finished: no metrics.json, left out
    return tmp_path


def test_leaderboard_is_sorted_and_the_pareto_front_excludes_dominated_jobs(sweep_dir):
    rows = select.main([str(sweep_dir), "--metric", "val/acc"])
    assert [r["job"] for r in rows] == ["1", "0", "2", "3"]
    assert sorted(r["job"] for r in select.pareto_front(rows, maximize=True)) == ["0", "1", "3"]
    with open(sweep_dir / "leaderboard.csv") as f:
        table = list(csv.DictReader(f))
    assert [(t["job"], float(t["metric"]), int(t["model/flops"])) for t in table] == [
        ("1", 0.97, 5000),
        ("0", 0.95, 1000),
        ("2", 0.93, 4000),
        ("3", 0.90, 800),
    ]
    assert (sweep_dir / "pareto.png").stat().st_size > 10_000
    assert not (sweep_dir / "importances.csv").exists()  # not a study: no journal


def test_the_winner_becomes_a_runnable_experiment(sweep_dir, tmp_path_factory):
    select.main([str(sweep_dir)])
    conf = shutil.copytree(CONF, tmp_path_factory.mktemp("conf") / "conf")
    shutil.copy(sweep_dir / "best_experiment.yaml", conf / "experiment" / "winner.yaml")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=winner"])
    assert (cfg.optimizer._target_, cfg.lr, cfg.model.width) == ("torch.optim.AdamW", 0.003, 256)
    assert "trial.number" not in (sweep_dir / "best_experiment.yaml").read_text()


def test_minimising_a_metric_reverses_the_order(sweep_dir):
    rows = select.main([str(sweep_dir), "--metric", "val/acc", "--mode", "min"])
    assert [r["job"] for r in rows] == ["3", "2", "0", "1"]


def test_an_empty_sweep_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no job under .* has a metrics.json with 'val/acc'"):
        select.main([str(tmp_path)])


@pytest.mark.slow
def test_report_over_a_real_study_has_a_row_per_trial_and_importances(tmp_path):
    from tests.test_study import sweep, trials

    params = "      lr: tag(log, interval(1e-3, 3e-2))\n      model.width: choice(16, 64)"
    assert sweep(tmp_path, "hydra.sweeper.n_trials=4", params=params).returncode == 0
    result = subprocess.run(
        [sys.executable, "-m", "hyperlab.select", str(tmp_path / "logs" / "study")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    with open(tmp_path / "logs" / "study" / "leaderboard.csv") as f:
        assert len(list(csv.DictReader(f))) == len(trials(tmp_path)) == 4
    with open(tmp_path / "logs" / "study" / "importances.csv") as f:
        assert {row["param"] for row in csv.DictReader(f)} == {"lr", "model.width"}
