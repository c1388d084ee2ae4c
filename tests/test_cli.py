"""The command line as a user meets it: help, config printing, bad input, run directories, real runs."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from omegaconf import OmegaConf

from hyperlab.config.cli import compose
from hyperlab.config.rules import check
from hyperlab.errors import ConfigError
from hyperlab.train import train
from tests.conftest import ROOT, run_cli


def test_help_lists_every_group_and_points_to_the_knob_reference():
    result = run_cli("train.py", "--help")
    assert result.returncode == 0
    for line in (
        "optimizer: adadelta, adagrad, adam, adamw, rmsprop, sgd",
        "scheduler: cosine, cyclic, exponential, none, onecycle, plateau, step",
        "trainer: cpu, ddp, ddp_sim, default, fsdp, gpu, mps",
        "debug: anomaly, fdr, limit, overfit, profiler",
    ):
        assert line in result.stdout
    assert "docs/knobs.md" in result.stdout


def test_composing_and_printing_the_config_imports_no_torch():
    """--cfg job must stay fast: neither torch nor lightning may load to compose or print a config."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", str(ROOT / "train.py"), "--cfg", "job", "optimizer=sgd", "lr=0.05"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0
    printed = yaml.safe_load(result.stdout)
    assert printed["lr"] == 0.05 and printed["optimizer"]["_target_"] == "torch.optim.SGD"
    assert printed["optimizer"]["lr"] == "${lr}"
    imported = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines() if "|" in line}
    assert "hydra" in imported and not {"torch", "lightning", "sklearn", "optuna"} & imported


# One case per error source, through the real command line: Hydra's composition errors and hyperlab's own checks.
BAD_INPUT_CLI = [
    (["optimizer=adamx"], ["Could not find 'optimizer/adamx'", "Available options in 'optimizer'", "adamw"]),
    (["foo=1"], ["Could not override 'foo'"]),
    (["+foo=1"], ["unknown top-level key(s) foo", "known: adversarial, augment, batch_size"]),
    (["lr=abc"], ["Value 'abc' of type 'str' could not be converted to Float", "full_key: lr"]),
    (["lr=0"], ["lr=0.0 is not allowed: must be a number > 0"]),
    (["data.val_fraction=0.5", "data.test_fraction=0.5"], ["must sum to < 1"]),
    (["ckpt_path=/no/such.ckpt"], ["ckpt_path='/no/such.ckpt': no such file"]),
]


@pytest.mark.parametrize(("args", "messages"), BAD_INPUT_CLI, ids=[" ".join(a) for a, _ in BAD_INPUT_CLI])
def test_bad_input_fails_before_training_with_a_clear_message(args, messages, tmp_path):
    result = run_cli("train.py", *args, f"paths.log_dir={tmp_path}")
    assert result.returncode == 1
    for message in messages:
        assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.rglob("*.ckpt")) and not list(tmp_path.rglob("metrics.json"))


@pytest.fixture(scope="module")
def default_cfg(tmp_path_factory):
    return compose([], tmp_path_factory.mktemp("cfg"))


# Every value rule of hyperlab.config.check, each as a user would type it.
BAD_VALUES = [
    ({"lr": -0.1}, "lr=-0.1 is not allowed: must be a number > 0"),
    ({"weight_decay": -1.0}, "weight_decay=-1.0 is not allowed: must be a number >= 0"),
    ({"batch_size": 0}, "batch_size=0 is not allowed: must be an integer >= 1"),
    ({"matmul_precision": "tf32"}, "matmul_precision='tf32' is not allowed: must be highest | high | medium"),
    ({"data.batch_size": "abc"}, "data.batch_size='abc' is not allowed: must be an integer >= 1"),
    ({"model.dropout": 1.0}, r"model.dropout=1.0 is not allowed: must be a number in \[0, 1\)"),
    ({"model.width": 0}, "model.width=0 is not allowed: must be an integer >= 1"),
    ({"model.depth": -1}, "model.depth=-1 is not allowed: must be an integer >= 0"),
    ({"data.test_fraction": 1.2}, r"data.test_fraction=1.2 is not allowed: must be a number in \[0, 1\)"),
    ({"data.val_fraction": 0.0}, r"data.val_fraction=0.0 is not allowed: must be a number in \(0, 1\)"),
    ({"data.test_fraction": 0.0}, "data.test_fraction=0 leaves no test split"),
    ({"optimized_metric": "acc"}, "optimized_metric='acc' is not allowed: must be null or a val/\\* or test/\\* key"),
    ({"data.num_folds": 1}, "data.num_folds=1 is not allowed: must be null or an integer >= 2"),
    (
        {"data.num_folds": 3, "data.fold": 3},
        r"data.fold=3 is not allowed: must be null or an integer in \[0, data.num_folds\)",
    ),
    ({"data.fold": 0}, r"data.fold=0 is not allowed: .* with data.num_folds set \(data.num_folds=None\)"),
    ({"data.num_workers": -2}, "data.num_workers=-2 is not allowed: must be an integer >= 0"),
    ({"data.num_workers": 2}, "data.num_workers=2 applies to DataLoaders: set data.device_resident=false"),
    ({"data.prefetch_factor": 2}, "data.prefetch_factor needs worker processes: set data.num_workers >= 1"),
    ({"data.task": "ranking"}, "data.task='ranking' is not allowed: must be classification | regression"),
    ({"data.sampler": "balanced"}, "data.sampler='balanced' is not allowed: must be null | weighted | oversample"),
    ({"data.outliers": "lof"}, "data.outliers='lof' is not allowed: must be null | isolation_forest"),
    ({"data.outlier_fraction": 0.9}, r"data.outlier_fraction=0.9 is not allowed: must be a number in \(0, 0.5\]"),
    ({"data.imbalance": 0}, r"data.imbalance=0 is not allowed: must be null or a number in \(0, 1\]"),
    ({"data.smooth_sigma": -1}, "data.smooth_sigma=-1 is not allowed: must be a number >= 0"),
    ({"loss.label_smoothing": 1.0}, r"loss.label_smoothing=1.0 is not allowed: must be a number in \[0, 1\)"),
    ({"regularization.l1": -1e-3}, "regularization.l1=-0.001 is not allowed: must be a number >= 0"),
    ({"regularization.l2": "x"}, "regularization.l2='x' is not allowed: must be a number >= 0"),
    ({"quantize": "fp16"}, "quantize='fp16' is not allowed: must be null, dynamic or static"),
    ({"adversarial.attack": "cw"}, "adversarial.attack='cw' is not allowed: must be null | fgsm | pgd"),
    ({"distill.alpha": 1.5}, r"distill.alpha=1.5 is not allowed: must be a number in \[0, 1\]"),
    ({"finetune.scope": "head"}, "finetune.scope='head' is not allowed: must be all or backbone"),
    ({"finetune.unfreeze_at_epoch": 2}, "finetune.unfreeze_at_epoch unfreezes a frozen backbone"),
    ({"trainer.max_epochs": 0}, "trainer.max_epochs=0 is not allowed: must be an integer >= 1, or -1"),
    ({"trainer.max_steps": 0}, "trainer.max_steps=0 is not allowed: must be an integer >= 1, or -1"),
    ({"trainer.accumulate_grad_batches": 0}, "trainer.accumulate_grad_batches=0 is not allowed"),
    ({"trainer.gradient_clip_algorithm": "max"}, "trainer.gradient_clip_algorithm='max' is not allowed: must be norm"),
    ({"resume": "sometimes"}, "resume='sometimes' is not allowed: must be never or auto"),
    ({"train": False}, "train=false evaluates a trained model: set ckpt_path"),
    ({"ckpt_path": __file__, "resume": "auto"}, "ckpt_path and resume=auto both choose the checkpoint"),
    ({"ckpt_path": "???"}, r"required value\(s\) not set: ckpt_path"),
    ({"lr": float("inf")}, "lr=inf is not allowed: must be a number > 0"),
    ({"model.dropout": float("nan")}, "model.dropout=nan is not allowed"),
    ({"data.split_seed": "abc"}, "data.split_seed='abc' is not allowed: must be an integer >= 0"),
    ({"trainer.gradient_clip_val": -1}, "trainer.gradient_clip_val=-1 is not allowed: must be null or a number >= 0"),
    ({"callbacks.early_stopping.patience": -1}, "callbacks.early_stopping.patience=-1 is not allowed: must be an"),
    (
        {"callbacks.rich_progress_bar.every_n_batches": 0},
        "callbacks.rich_progress_bar.every_n_batches=0 is not allowed: must be an integer >= 1",
    ),
]


@pytest.mark.parametrize(("values", "message"), BAD_VALUES, ids=[str(v) for v, _ in BAD_VALUES])
def test_every_value_rule_names_the_key_and_what_is_allowed(values, message, default_cfg):
    cfg = default_cfg.copy()
    for key, value in values.items():
        OmegaConf.update(cfg, key, value)
    with pytest.raises(ConfigError, match=message):
        check(cfg)


@pytest.mark.parametrize("schedule", ["step", "exponential"])
def test_a_decay_factor_of_zero_is_refused(schedule, tmp_path):
    with pytest.raises(ConfigError, match="scheduler.gamma=0 is not allowed: must be a number > 0"):
        check(compose([f"scheduler={schedule}", "scheduler.gamma=0"], tmp_path))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["trainer.precision=bf16-mixed"], "Lightning cannot clip the gradients of a fused optimizer"),
        (["trainer=fsdp", "optimizer.fused=false"], "trainer.gradient_clip_algorithm=norm with trainer=fsdp"),
    ],
)
def test_gradient_clipping_that_lightning_would_refuse_mid_fit_is_refused_first(overrides, message, tmp_path):
    cfg = compose(["trainer.gradient_clip_val=1.0", *overrides], tmp_path)
    with pytest.raises(ConfigError, match=message):
        check(cfg)
    OmegaConf.update(cfg, "trainer.gradient_clip_val", None)
    check(cfg)  # without clipping the same settings are fine


# One case per config group that the constructors themselves refuse: whatever they raise is reported naming the
# key that fed them (hyperlab.config.key_errors), before the first training step. (overrides, message)
BAD_CONSTRUCTOR_ARGS = [
    (["optimizer=sgd", "optimizer.momentum=-0.5"], "optimizer.momentum=-0.5: Invalid momentum value: -0.5"),
    (["optimizer=adam", "optimizer.eps=-1"], "optimizer.eps=-1: Invalid epsilon value: -1"),
    (["optimizer=adam", "optimizer.betas=[1.5,0.99]"], r"optimizer.betas=\[1.5, 0.99\]: Invalid beta parameter"),
    (["scheduler=cosine", "scheduler.warmup_steps=1000"], r"scheduler.warmup_steps=1000 must be in \[0, 40\)"),
    (["model.norm=group"], "model.norm='group' is not one of: none, batch, layer"),
    (["+data.colour=red"], "data.colour='red': .*unexpected keyword argument 'colour'"),
    (["loss=cross_entropy", "+loss.reduction=sum"], "loss.reduction='sum': .*unexpected keyword argument"),
    (["augment=image", "augment.rotation=-5"], r"augment.rotation=-5: If degrees is a single number, it must be"),
    (["trainer.precision=17"], "trainer.precision=17: Precision 17 is invalid"),
    (["callbacks.early_stopping.mode=up"], "callbacks.early_stopping.mode='up': .*`mode` can be min, max, got up"),
    (["callbacks.model_checkpoint.save_top_k=-5"], "callbacks.model_checkpoint.save_top_k=-5: .*Must be >= -1"),
    (["logger=csv", "logger.csv.save_dir=/proc/hyperlab-no"], "logger.csv cannot start: .*/proc/hyperlab-no"),
]


@pytest.mark.parametrize(
    ("overrides", "message"), BAD_CONSTRUCTOR_ARGS, ids=[" ".join(o) for o, _ in BAD_CONSTRUCTOR_ARGS]
)
def test_a_constructor_refusal_names_the_key_before_the_first_step(overrides, message, make_cfg, monitor_steps):
    cfg = make_cfg(*overrides)
    check(cfg)  # no rule catches these: the constructors do
    with pytest.raises(ConfigError, match=message):
        train(cfg)
    assert monitor_steps == []  # no training step ran
    assert not list(Path(cfg.paths.output_dir).rglob("*.ckpt")) and not list(
        Path(cfg.paths.output_dir).rglob("metrics.json")
    )


@pytest.fixture
def monitor_steps(monkeypatch):
    from hyperlab.training.supervised import Supervised

    steps, step = [], Supervised.training_step
    monkeypatch.setattr(Supervised, "training_step", lambda self, *a: steps.append(1) or step(self, *a))
    return steps


def test_culprit_prefers_the_key_whose_name_and_value_the_message_gives():
    from hyperlab.config.key_errors import culprit

    node = OmegaConf.create({"_target_": "x", "lr": "${lr}", "momentum": -1.0, "dampening": -1.0, "nesterov": False})
    root = OmegaConf.create({"lr": -1.0, "optimizer": node})
    assert culprit("optimizer", root.optimizer, "Invalid momentum value: -1.0") == "optimizer.momentum=-1.0"
    # a value set through an interpolation is named as the user typed it
    assert culprit("optimizer", root.optimizer, "Invalid learning rate: -1.0 (lr)") == "lr=-1.0"
    assert culprit("optimizer", root.optimizer, "something else entirely") is None


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "message"),
    [BAD_CONSTRUCTOR_ARGS[0], BAD_CONSTRUCTOR_ARGS[3], BAD_CONSTRUCTOR_ARGS[8]],
    ids=lambda v: " ".join(v) if isinstance(v, list) else "",
)
def test_a_constructor_refusal_exits_1_with_one_line(overrides, message, tmp_path):
    import re

    result = run_cli("train.py", *overrides, "trainer.max_epochs=2", f"paths.log_dir={tmp_path}")
    assert result.returncode == 1
    assert re.search(message, result.stderr.strip().splitlines()[-1]), result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.rglob("*.ckpt")) and not list(tmp_path.rglob("metrics.json"))


def test_warmup_steps_rule_applies_to_every_schedule(tmp_path):
    cfg = compose(["scheduler=cosine", "scheduler.warmup_steps=-5"], tmp_path)
    with pytest.raises(ConfigError, match="scheduler.warmup_steps=-5 is not allowed"):
        check(cfg)
    check(compose(["scheduler=cosine", "scheduler.warmup_steps=5"], tmp_path))  # and a good value passes


def test_full_error_shows_the_traceback(tmp_path):
    result = run_cli("train.py", "lr=0", f"paths.log_dir={tmp_path}", env={"HYDRA_FULL_ERROR": "1"})
    assert result.returncode == 1 and "Traceback" in result.stderr and "ConfigError" in result.stderr


def test_eval_requires_an_existing_checkpoint(tmp_path):
    missing = run_cli("eval.py", f"paths.log_dir={tmp_path}")
    assert missing.returncode == 1 and "required value(s) not set: ckpt_path" in missing.stderr
    assert "Traceback" not in missing.stderr
    absent = run_cli("eval.py", "ckpt_path=/no/such.ckpt", f"paths.log_dir={tmp_path}")
    assert absent.returncode == 1 and "ckpt_path='/no/such.ckpt': no such file" in absent.stderr


def test_runs_started_in_the_same_second_get_different_directories(tmp_path):
    """Hydra creates the run dir before the job's first line; a failing check keeps the job short."""
    cmd = [sys.executable, str(ROOT / "train.py"), "lr=0", f"paths.log_dir={tmp_path}"]
    procs = [subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.DEVNULL) for _ in range(3)]
    assert [p.wait(timeout=120) for p in procs] == [1, 1, 1]
    assert len(list((tmp_path / "train" / "runs").iterdir())) == 3


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["model=cnn", "data=breast_cancer"],
            r"model=cnn needs image data of shape \(C, H, W\) or signals \(C, L\); this dataset gives \(30,\)",
        ),
        (["model.activation=swish"], "model.activation='swish' is not one of: relu, leaky_relu, gelu, tanh, sigmoid"),
        (["+data.colour=red"], "unexpected keyword argument 'colour'"),
    ],
)
def test_errors_found_while_building_name_the_key_before_training(overrides, message, make_cfg):
    cfg = make_cfg(*overrides)
    with pytest.raises(ConfigError, match=message):
        train(cfg)
    assert not list(Path(cfg.paths.output_dir).rglob("*.ckpt"))


@pytest.mark.slow
def test_default_training_run_from_the_command_line(tmp_path):
    """What `make train` runs: the default config, 20 epochs of digits."""
    result = run_cli("train.py", f"paths.log_dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (tmp_path / "train" / "runs").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test/acc"] >= 0.95 and metrics["trainer/global_step"] == 400
    assert metrics["command"] == ["train.py", f"paths.log_dir={tmp_path}"]
    assert (run_dir / ".hydra" / "config.yaml").is_file() and (run_dir / "checkpoints" / "last.ckpt").is_file()
    # the output ends by saying what the run got and where it is; no advertisements, nothing said twice
    tail = result.stdout[result.stdout.rindex("Run finished") :].splitlines()
    assert tail[0].endswith(str(run_dir)) and tail[1].split() == ["optimized", "val/acc", f"{metrics['val/acc']:.4f}"]
    assert f"test/acc {metrics['test/acc']:.4f}" in tail[2]
    assert tail[-1] == f"  evaluate  python eval.py ckpt_path={metrics['ckpt/best']}"
    everything = result.stdout + result.stderr
    assert "Tip:" not in everything and "Seed set to" not in everything  # Lightning's info lines: the log file
    log = (run_dir / "train.log").read_text()
    assert "Tip:" not in log and log.count("Seed set to 42") == log.count("Restoring states from the checkpoint") == 1


@pytest.mark.slow
def test_overrides_from_the_command_line_reach_the_run(tmp_path):
    result = run_cli("train.py", "optimizer=adamw", "lr=3e-4", "trainer.max_epochs=1", f"paths.log_dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (tmp_path / "train" / "runs").iterdir()
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["optimizer_states"][0]["param_groups"][0]["lr"] == 3e-4
    assert yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())[:2] == ["optimizer=adamw", "lr=3e-4"]


def test_a_sweeps_dir_under_the_working_directory_resolves_before_any_job(monkeypatch):
    """The sweep dir is ${paths.log_dir}/... under ${hydra:runtime.cwd}; Hydra sets the config that resolver reads
    only per job, so the sweeper could not read its own dir ("HydraConfig was not set") unless paths.log_dir was
    given. The Hydra callback of conf/hydra/default.yaml sets it when the multirun starts."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import instantiate
    from omegaconf.errors import InterpolationResolutionError

    from hyperlab.config.cli import compose_with_hydra

    cfg = compose_with_hydra(["hparams_search=tpe"])
    monkeypatch.setattr(HydraConfig.instance(), "cfg", None)  # as under -m before the first job
    with pytest.raises(InterpolationResolutionError, match="HydraConfig was not set"):
        str(cfg.hydra.sweep.dir)
    for callback in cfg.hydra.callbacks.values():
        instantiate(callback).on_multirun_start(config=cfg)
    assert cfg.hydra.sweep.dir == f"{cfg.hydra.runtime.cwd}/logs/train/studies/{cfg.hydra.sweeper.study_name}"


@pytest.mark.slow
def test_a_sweep_with_no_paths_given_writes_under_the_working_directory(tmp_path):
    result = run_cli("train.py", "-m", "lr=1e-3,3e-4", "trainer.max_epochs=1", "callbacks=none", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = (tmp_path / "logs" / "train" / "multiruns").iterdir()
    assert sorted(p.name for p in sweep.iterdir() if (p / "metrics.json").is_file()) == ["0", "1"]


@pytest.mark.slow
def test_multirun_grid_runs_every_combination_once(tmp_path):
    result = run_cli(
        "train.py",
        "-m",
        "optimizer=adamw,sgd",
        "lr=1e-3,3e-4",
        "trainer.max_epochs=1",
        "callbacks=none",
        f"paths.log_dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = (tmp_path / "train" / "multiruns").iterdir()
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and (p / "metrics.json").exists())
    assert [p.name for p in jobs] == ["0", "1", "2", "3"]
    seen = {tuple(yaml.safe_load((p / ".hydra" / "overrides.yaml").read_text())[:2]) for p in jobs}
    assert seen == {(f"optimizer={o}", f"lr={lr}") for o in ("adamw", "sgd") for lr in ("0.001", "0.0003")}


@pytest.mark.slow
def test_eval_cli_tests_and_predicts_with_the_training_config(tmp_path):
    trained = run_cli("train.py", "model.width=32", "trainer.max_epochs=2", f"paths.log_dir={tmp_path}")
    assert trained.returncode == 0, trained.stderr[-3000:]
    (run_dir,) = (tmp_path / "train" / "runs").iterdir()
    trained_metrics = json.loads((run_dir / "metrics.json").read_text())
    result = run_cli("eval.py", f"ckpt_path={trained_metrics['ckpt/best']}", f"paths.log_dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    (eval_dir,) = (tmp_path / "eval" / "runs").iterdir()
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    # the width-32 MLP is rebuilt from the checkpoint's own config (the default width 256 would not load)
    assert metrics["test/acc"] == trained_metrics["test/acc"]
    assert len((eval_dir / "predictions.csv").read_text().splitlines()) == 361


@pytest.mark.slow
def test_resume_auto_continues_an_interrupted_run_of_the_same_command(tmp_path):
    args = [
        "trainer.max_epochs=3",
        "model.width=16",
        "callbacks.model_checkpoint.save_top_k=-1",
        f"paths.log_dir={tmp_path}",
    ]
    assert run_cli("train.py", *args).returncode == 0
    (first,) = (tmp_path / "train" / "runs").iterdir()
    complete = json.loads((first / "metrics.json").read_text())
    # as if the run had died after its 2nd epoch: last.ckpt is the epoch-2 checkpoint
    shutil.copy(first / "checkpoints" / "epoch_001.ckpt", first / "checkpoints" / "last.ckpt")
    assert run_cli("train.py", "trainer.max_epochs=4", *args[1:], "resume=auto").returncode == 0  # other command
    result = run_cli("train.py", *args, "resume=auto")
    assert result.returncode == 0, result.stderr[-3000:]
    latest = max((tmp_path / "train" / "runs").iterdir())
    resumed = json.loads((latest / "metrics.json").read_text())
    assert resumed["ckpt/resumed_from"] == str(first / "checkpoints" / "last.ckpt")
    assert resumed["trainer/global_step"] == 60
    assert (resumed["val/loss"], resumed["test/acc"]) == (complete["val/loss"], complete["test/acc"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["callbacks.model_checkpoint.monitor=val/nope"], "ModelCheckpoint monitors 'val/nope', which is never logged"),
        (
            ["callbacks.early_stopping.monitor=val/accuracy"],
            "EarlyStopping monitors 'val/accuracy', which is never logged",
        ),
        (["scheduler=plateau", "scheduler.monitor=val/nope"], "ReduceLROnPlateau monitors 'val/nope', which is never"),
    ],
)
def test_a_monitor_that_is_never_logged_fails_before_the_first_step(overrides, message, make_cfg):
    cfg = make_cfg(*overrides)
    with pytest.raises(ConfigError, match=message):
        train(cfg)
    assert not list(Path(cfg.paths.output_dir).rglob("*.ckpt"))


@pytest.fixture(scope="module")
def cnn_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("cnn")
    train(compose(["model=cnn", "trainer.max_epochs=1", "test=false"], out))
    return out / "checkpoints" / "last.ckpt"


def test_resuming_from_another_models_checkpoint_is_refused(cnn_checkpoint, make_cfg):
    with pytest.raises(ConfigError, match=r"holds a different model \(hyperlab.models.CNN\)"):
        train(make_cfg(f"ckpt_path={cnn_checkpoint}"))


@pytest.mark.parametrize("script", ["train", "eval"])
def test_a_corrupt_checkpoint_is_refused(script, make_cfg, tmp_path, cnn_checkpoint):
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(cnn_checkpoint.read_bytes()[:5000])  # truncated, as by a full disk
    cfg = make_cfg(f"ckpt_path={corrupt}", config_name=script)
    run = train if script == "train" else __import__("hyperlab.evaluate", fromlist=["evaluate"]).evaluate
    with pytest.raises(ConfigError, match="is not a readable checkpoint"):
        run(cfg)


@pytest.mark.parametrize(("logger", "key"), [("csv", "save_dir"), ("tensorboard", "save_dir")])
def test_a_logger_that_cannot_write_fails_at_start(logger, key, make_cfg):
    cfg = make_cfg(f"logger={logger}", f"logger.{logger}.{key}=/proc/hyperlab-cannot-write")
    with pytest.raises(ConfigError, match=f"logger.{logger} cannot start: .*/proc/hyperlab-cannot-write"):
        train(cfg)
    assert not list(Path(cfg.paths.output_dir).rglob("*.ckpt"))
