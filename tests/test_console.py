"""What a run prints: the closing summaries and the filter on Lightning's console lines."""

import logging
import warnings
from pathlib import Path

from hyperlab.console import DropAdvertisementsAndRepeats, quiet_lightning, run_summary, sweep_summary

METRICS = {
    "val/acc": 0.98333,
    "val/loss": 0.07,
    "test/acc": 0.98056,
    "test/loss": 0.0712,
    "test/f1": 0.9801,
    "ckpt/best": "/runs/a/checkpoints/epoch_012.ckpt",
    "time/train_s": 3.14,
}


def test_a_run_summary_names_the_metrics_checkpoint_run_dir_and_eval_command():
    lines = run_summary(METRICS, "/runs/a", "val/acc").splitlines()
    assert lines == [
        "Run finished in 3.1 s of training: /runs/a",
        "  optimized val/acc 0.9833",
        "  test      test/acc 0.9806   test/f1 0.9801   test/loss 0.0712",
        "  best ckpt /runs/a/checkpoints/epoch_012.ckpt",
        "  evaluate  python eval.py ckpt_path=/runs/a/checkpoints/epoch_012.ckpt",
    ]
    assert all(len(line) <= 80 for line in lines)


def test_a_cross_validated_summary_gives_mean_and_std_and_evaluates_the_run_dir():
    cv = {"val/acc": 0.975, "val/acc_std": 0.008, "test/acc": 0.97, "test/acc_std": 0.01, "data/num_folds": 5}
    lines = run_summary(cv, "/runs/cv", "val/acc").splitlines()
    assert lines[1] == "  optimized val/acc 0.9750 ± 0.0080 over 5 folds"
    assert lines[2] == "  test      test/acc 0.9700 ± 0.0100"
    assert lines[-1] == "  evaluate  python eval.py ckpt_path=/runs/cv"


def test_a_sweep_summary_counts_trials_and_names_the_best_job():
    best = [{"number": 7, "values": [0.9889], "params": {"lr": 0.0012022983, "optimizer": "sgd"}}]
    text = sweep_summary(
        Path("/s"), {"COMPLETE": 8, "PRUNED": 2, "FAIL": 0}, best, {"val/acc": "maximize"}, METRICS
    ).splitlines()
    assert text[0] == "Sweep finished: /s (10 trials: 8 complete, 2 pruned)"
    assert text[1:4] == [
        "  best      trial 7: val/acc 0.9889",
        "  params    lr=0.001202   optimizer=sgd",
        "  job dir   /s/7",
    ]
    assert text[-1] == "  report    python -m hyperlab.select /s"


def test_lightning_advertisements_and_repeats_are_dropped_but_warnings_pass():
    keep = DropAdvertisementsAndRepeats()

    def passes(message: str, level: int = logging.INFO) -> bool:
        return keep.filter(logging.LogRecord("lightning", level, __file__, 1, message, None, None))

    assert not passes("💡 Tip: For seamless cloud logging and experiment tracking, try installing [litlogger]")
    assert passes("Restoring states from the checkpoint path at x.ckpt")
    assert not passes("Restoring states from the checkpoint path at x.ckpt")
    assert passes("Restoring states from the checkpoint path at y.ckpt")
    assert passes("a warning", logging.WARNING) and passes("a warning", logging.WARNING)


def test_lightnings_info_lines_reach_the_log_file_but_not_the_console():
    from hyperlab.config.cli import compose_with_hydra
    from hyperlab.console import LightningInfoToTheFileOnly

    def record(name: str, level: int) -> logging.LogRecord:
        return logging.LogRecord(name, level, __file__, 1, "Seed set to 42", None, None)

    console = LightningInfoToTheFileOnly()
    assert not console.filter(record("lightning.fabric.utilities.seed", logging.INFO))
    assert console.filter(record("lightning.pytorch.utilities.rank_zero", logging.WARNING))
    assert console.filter(record("hyperlab.train", logging.INFO))
    logging_cfg = compose_with_hydra([]).hydra.job_logging  # the console handler has it; the file handler not
    (name,) = logging_cfg.handlers.console.filters
    assert logging_cfg.filters[name]["()"] == "hyperlab.console.LightningInfoToTheFileOnly"
    assert "filters" not in logging_cfg.handlers.file


def test_the_logging_interval_warning_of_small_data_is_not_printed_but_other_warnings_are():
    from lightning.pytorch.utilities import rank_zero_warn

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_lightning()
        rank_zero_warn("The number of training batches (5) is smaller than the logging interval Trainer(...)")
        rank_zero_warn("something else")
    assert [str(w.message) for w in caught] == ["something else"]
