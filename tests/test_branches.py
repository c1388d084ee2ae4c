"""Cooldown branches (scheduler=wsd, hyperlab.training.branches): a stable run's saves, a branch that resumes one
and runs only the cooldown, and `scheduler.budgets`, which does both in one command."""

import csv
import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from hyperlab.errors import ConfigError
from hyperlab.train import train
from hyperlab.training.branches import train_budgets
from tests.test_tokens import write_corpus

EPOCH = 5  # optimizer steps per epoch (data.batches_per_epoch)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"))


def gpt_run(corpus: Path, cache: Path, *overrides: str) -> list[str]:
    """A tiny GPT on a written corpus, 5 steps an epoch, no bar; validation over all val windows."""
    return [
        "data=stdlib",
        f"data.paths=[{corpus}]",
        "data.tokenizer=bytes",
        "data.context=16",
        "batch_size=4",
        f"data.batches_per_epoch={EPOCH}",
        "data.eval_windows=null",
        "data.val_fraction=0.1",
        "data.test_fraction=0.1",
        f"data.cache_dir={cache}",
        "model=gpt",
        "model.width=16",
        "model.depth=1",
        "model.heads=2",
        "lr=3e-3",
        "optimized_metric=val/loss",
        "callbacks.rich_progress_bar=null",
        "callbacks.early_stopping=null",
        "scheduler=wsd",
        "scheduler.warmup_steps=2",
        *overrides,
    ]


def run(make_cfg, out: Path, overrides: list[str]) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    train(make_cfg(*overrides, fast=False, output_dir=out))
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.slow  # fast siblings: test_schedules.py's decay_from trace, the budget plan and the refusals below
def test_a_branch_resumes_the_stable_state_and_equals_an_unbroken_run(make_cfg, corpus, tmp_path):
    """Stable to step 10 (saved), then a branch to 15: the unbroken wsd run of 15 steps whose cooldown starts at
    10 (decay_fraction 1/3) ends with the same weights, so the branch resumed the exact state and then decayed;
    the stable run continued to 15 at a constant LR ends elsewhere (the decay is not a no-op)."""
    cache = tmp_path / "cache"
    stable = run(
        make_cfg,
        tmp_path / "stable",
        gpt_run(corpus, cache, "trainer.max_steps=15", "scheduler.decay_fraction=0", "scheduler.save_at=[10]"),
    )
    save = tmp_path / "stable" / "checkpoints" / "step_000010.ckpt"
    assert torch.load(save, weights_only=True, map_location="cpu")["global_step"] == 10
    branch = run(
        make_cfg,
        tmp_path / "branch",
        gpt_run(corpus, cache, "trainer.max_steps=15", f"scheduler.decay_from={save}", "scheduler.decay_shape=linear"),
    )
    unbroken = run(
        make_cfg,
        tmp_path / "unbroken",
        gpt_run(
            corpus, cache, "trainer.max_steps=15", f"scheduler.decay_fraction={1 / 3}", "scheduler.decay_shape=linear"
        ),
    )
    assert branch["trainer/global_step"] == unbroken["trainer/global_step"] == 15
    assert branch["ckpt/resumed_from"] == str(save)
    rows = list(csv.DictReader((tmp_path / "branch" / "csv" / "metrics.csv").read_text().splitlines()))
    trained = [row for row in rows if row["train/loss"]]
    assert [row["epoch"] for row in trained] == ["2"]  # only the cooldown's epoch trained (from scratch: 0, 1, 2)
    assert branch["val/loss"] == pytest.approx(unbroken["val/loss"], rel=1e-5)
    assert abs(branch["val/loss"] - stable["val/loss"]) > 1e-3
    weights = [
        torch.load(tmp_path / name / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
        for name in ("branch", "unbroken")
    ]
    for key, value in weights[0].items():
        torch.testing.assert_close(value, weights[1][key], rtol=1e-5, atol=1e-6)


def test_budgets_plan_one_stable_run_and_a_cooldown_branch_per_budget(tmp_path):
    """train_budgets' plan, without training: the stable run to the longest budget's cooldown start, saved where
    each budget's cooldown starts, then a branch per budget from its save; the longest budget's figures."""
    calls = []

    def train_with(changes: dict) -> dict:
        calls.append(changes)
        return {"time/train_s": 1.0, "val/loss": float(len(calls)), "trainer/global_step": changes["trainer.max_steps"]}

    metrics = train_budgets(OmegaConf.create({"budgets": [20, 10], "decay_fraction": 0.5}), tmp_path, train_with)
    stable, *branches = calls
    assert (stable["trainer.max_steps"], stable["scheduler.save_at"], stable["scheduler.decay_fraction"]) == (
        10,
        [5, 10],
        0.0,
    )
    assert stable["test"] is False and stable["callbacks.early_stopping"] is None
    saves = [str(tmp_path / "stable" / "checkpoints" / name) for name in ("step_000005.ckpt", "step_000010.ckpt")]
    assert [b["scheduler.decay_from"] for b in branches] == saves
    assert [(b["trainer.max_steps"], b["scheduler.budgets"]) for b in branches] == [(10, None), (20, None)]
    assert metrics["val/loss"] == 3.0 and metrics["time/train_s"] == 3.0 and sorted(metrics["budgets"]) == ["10", "20"]
    assert json.loads((tmp_path / "metrics.json").read_text())["budgets"]["10"]["val/loss"] == 2.0


@pytest.mark.slow  # fast sibling: test_budgets_plan_one_stable_run_and_a_cooldown_branch_per_budget
def test_budgets_run_one_stable_run_and_a_branch_per_budget(make_cfg, corpus, tmp_path):
    metrics = run(
        make_cfg,
        tmp_path / "run",
        gpt_run(
            corpus, tmp_path / "cache", "scheduler=wsd", "scheduler.budgets=[10,20]", "scheduler.decay_fraction=0.5"
        ),
    )
    assert sorted(metrics["budgets"]) == ["10", "20"]
    assert [metrics["budgets"][b]["trainer/global_step"] for b in ("10", "20")] == [10, 20]
    saves = sorted(p.name for p in (tmp_path / "run" / "stable" / "checkpoints").glob("step_*.ckpt"))
    assert saves == ["step_000005.ckpt", "step_000010.ckpt"]  # each budget's cooldown is its second half
    stable = json.loads((tmp_path / "run" / "stable" / "metrics.json").read_text())
    assert stable["trainer/global_step"] == 10  # the stable run stops where the longest cooldown starts
    assert metrics["val/loss"] == metrics["budgets"]["20"]["val/loss"]
    parts = [stable, *(json.loads((tmp_path / "run" / f"budget_{b}" / "metrics.json").read_text()) for b in (10, 20))]
    assert metrics["time/train_s"] == pytest.approx(sum(p["time/train_s"] for p in parts), abs=1e-2)


def test_a_branch_of_another_model_is_refused_before_training(make_cfg, corpus, tmp_path):
    cache = tmp_path / "cache"
    run(
        make_cfg,
        tmp_path / "stable",
        gpt_run(corpus, cache, "trainer.max_steps=5", "scheduler.decay_fraction=0", "scheduler.save_at=[5]"),
    )
    save = tmp_path / "stable" / "checkpoints" / "step_000005.ckpt"
    overrides = gpt_run(corpus, cache, "trainer.max_steps=10", f"scheduler.decay_from={save}", "model.width=32")
    with pytest.raises(ConfigError, match=r"another run: its model differs .*model.width=16 there, 32 here"):
        run(make_cfg, tmp_path / "branch", overrides)
    assert not (tmp_path / "branch" / "checkpoints").exists()
    late = gpt_run(corpus, cache, "trainer.max_steps=5", f"scheduler.decay_from={save}")
    with pytest.raises(ConfigError, match=r"saved at step 5.*trainer.max_steps > 5"):
        run(make_cfg, tmp_path / "late", late)


def test_a_branch_from_a_decaying_run_is_refused(make_cfg, corpus, tmp_path):
    cache = tmp_path / "cache"
    run(make_cfg, tmp_path / "cosine", gpt_run(corpus, cache, "trainer.max_steps=5", "scheduler.decay_fraction=0.2"))
    last = tmp_path / "cosine" / "checkpoints" / "last.ckpt"
    with pytest.raises(ConfigError, match="not a stable run's checkpoint"):
        run(
            make_cfg,
            tmp_path / "branch",
            gpt_run(corpus, cache, "trainer.max_steps=10", f"scheduler.decay_from={last}"),
        )


def test_a_save_that_does_not_end_an_epoch_is_refused_before_the_first_step(make_cfg, tmp_path):
    """Digits' epoch length is known only once its splits are made: checked at the fit's start, before a step."""
    cfg = make_cfg(
        "scheduler=wsd", "scheduler.decay_fraction=0", "scheduler.save_at=[7]", "callbacks.early_stopping=null"
    )
    with pytest.raises(
        ConfigError, match=r"scheduler.save_at=\[7\]: each must end an epoch \(\d+ optimizer steps here"
    ):
        train(cfg)
    assert not list(tmp_path.rglob("*.ckpt")) and not (tmp_path / "metrics.json").exists()
