"""Bad input on the newer features (token data, GPT, muP, the data doors, the study sweeper, hardware): refused
before any work with one line naming the key. The rules themselves: hyperlab.config.rules and .sweep_rules."""

import copy
import functools
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf, open_dict

from hyperlab.config.cli import CONF_DIR, compose, compose_with_hydra
from hyperlab.config.rules import BOOLEAN_KEYS, CROSS_KEY_CHECKS, RULES, check, value_rules
from hyperlab.config.sweep_rules import check_search, check_sweeper
from hyperlab.errors import ConfigError
from tests.conftest import run_cli
from tests.test_cli import BAD_VALUES

HERE = Path(__file__).resolve()

# (overrides, the message's start): one case per rule added for the newer features; each fails if its rule goes
BAD_CONFIGS = [
    (["model=gpt", "data=stdlib", "data.context=0"], "data.context=0 is not allowed: must be an integer >= 1"),
    (["data=stdlib", "data.vocab_size=100"], r"data.vocab_size=100 is not allowed: must be an integer in \(256"),
    (["data=stdlib", "data.tokenizer=words"], "data.tokenizer='words' is not allowed: must be bpe | bytes"),
    (["data=stdlib", "data.batches_per_epoch=0"], "data.batches_per_epoch=0 is not allowed"),
    (["data=stdlib", "data.eval_windows=0"], r"data.eval_windows=0 is not allowed: must be null \(all\)"),
    (["data=stdlib", "data.paths=/no/corpus"], "data.paths='/no/corpus' is not allowed: must be null"),
    (["data=stdlib", "data.paths=[/no/corpus]"], "data.paths: '/no/corpus': no such file or folder"),
    (["data.eval_batch_size=0"], "data.eval_batch_size=0 is not allowed: must be an integer >= 1"),
    (["data.shuffle_seed=-1"], "data.shuffle_seed=-1 is not allowed"),
    (["model=gpt", "data=stdlib", "model.heads=5"], "model.width=192 must be a multiple of model.heads=5"),
    (
        ["model=gpt", "data=stdlib", "model.parametrization=mup", "model.base_width=100"],
        "model.base_width=100 must be a multiple of model.heads=6",
    ),
    (["trial.steps=fold"], "trial.steps='fold' is not allowed: must be epoch | percent"),
    (["metrics.val=all"], "metrics.val='all' is not allowed: must be lean | full"),
    (["model.parametrization=mu_p"], "model.parametrization='mu_p' is not allowed: must be standard | mup"),
    (["model=gpt", "model.tie_weights=yes"], "model.tie_weights='yes' is not allowed: must be true or false"),
    (
        ["scheduler=cosine", "scheduler.warmup_steps=10", "trainer.max_steps=10"],
        r"scheduler.warmup_steps=10 must be < the run's 10 optimizer steps \(trainer.max_steps=10\)",
    ),
    (
        ["experiment=gpt_stdlib", "trainer.max_epochs=1", "data.batches_per_epoch=50", "scheduler.warmup_steps=50"],
        r"scheduler.warmup_steps=50 must be < the run's 50 optimizer steps \(trainer.max_epochs=1 x",
    ),
    (["data=table", f"data.path={HERE}", "data.target=''"], "data.target='' is not allowed: must be a column name"),
    (["data=table", f"data.path={HERE}", "data.target=y", "data.features=x"], "data.features='x' is not allowed"),
    (["data=images", f"data.path={HERE.parent}", "data.image_size=[0,32]"], "data.image_size=.* is not allowed"),
    (["data=mnist1d", "data.load.train_split=1.0"], r"data.load.train_split=1.0 is not allowed: must be a number in"),
    (["data=mnist1d", "data.load.num_samples=0"], "data.load.num_samples=0 is not allowed"),
    (["data=mnist1d", "data.load.seed=-1"], "data.load.seed=-1 is not allowed: must be an integer >= 0"),
    (["data=text", "data.load.seq_len=0"], "data.load.seq_len=0 is not allowed: must be an integer >= 1"),
    # scheduler=wsd and its cooldown branches (hyperlab.training.branches)
    (
        ["scheduler=wsd", "scheduler.decay_fraction=1.5"],
        r"scheduler.decay_fraction=1.5 is not allowed: must be a number",
    ),
    (
        ["scheduler=wsd", "scheduler.decay_shape=cosine"],
        "scheduler.decay_shape='cosine' is not allowed: must be linear",
    ),
    (["scheduler=wsd", "scheduler.budgets=[20,10]"], r"scheduler.budgets=\[20, 10\] is not allowed: must be null or"),
    (["scheduler=wsd", "scheduler.save_at=[0]"], r"scheduler.save_at=\[0\] is not allowed: must be null or ascending"),
    (
        ["scheduler=wsd", "scheduler.warmup_steps=90", "trainer.max_steps=100"],
        "a cooldown of 20 steps and scheduler.warmup_steps=90 overlap in the run's 100 optimizer steps",
    ),
    (["scheduler=wsd", "scheduler.decay_from=/no/stable.ckpt"], "scheduler.decay_from='/no/stable.ckpt': no such file"),
    (
        ["scheduler=wsd", f"scheduler.decay_from={HERE}", "callbacks.early_stopping=null", f"ckpt_path={HERE}"],
        "scheduler.decay_from and ckpt_path both choose where this run starts",
    ),
    (
        ["scheduler=wsd", f"scheduler.decay_from={HERE}"],
        "which early stopping would cut: set callbacks.early_stopping=null",
    ),
    (["scheduler=wsd", "scheduler.save_at=[10]"], "scheduler.save_at with scheduler.decay_fraction=0.2: a branch"),
    (["scheduler=wsd", "scheduler.budgets=[100]", "scheduler.decay_fraction=0"], "set scheduler.decay_fraction > 0"),
    (
        ["experiment=gpt_stdlib", "scheduler=wsd", "scheduler.warmup_steps=0", "scheduler.budgets=[300]"],
        r"scheduler.budgets=\[300\]: step 240 .* must end an epoch \(200 optimizer steps",
    ),
]


TABLE = ["data=table", f"data.path={HERE}", "data.target=y"]  # value rules run before the file is read
LSTM = ["model=lstm", "data=text"]
# (the config group choices, values set on them, the message's start): the rules the tables above have no bad
# value for; together they give every rule and cross-key check one (test_every_rule_has_a_bad_value_here)
BAD_VALUES_ON = [
    (["scheduler=step"], {"scheduler.step_size": 0}, "scheduler.step_size=0 is not allowed: must be an integer >= 1"),
    (["scheduler=step"], {"scheduler.warmup_steps": -1}, "scheduler.warmup_steps=-1 is not allowed: must be an"),
    (["scheduler=exponential"], {"scheduler.gamma": -0.5}, "scheduler.gamma=-0.5 is not allowed: must be a number"),
    (["scheduler=wsd"], {"scheduler.decay_from": ""}, "scheduler.decay_from='' is not allowed: must be null or a"),
    ([], {"data.outer_folds": 1, "data.outer_fold": 0}, "data.outer_folds=1 is not allowed: must be null or an"),
    ([], {"data.outer_folds": 3}, r"data.outer_fold=None is not allowed: data.outer_folds and data.outer_fold are"),
    ([], {"data.refit": "yes"}, "data.refit='yes' is not allowed: must be true or false"),
    ([], {"callbacks.model_checkpoint.write_every_s": -1}, "write_every_s=-1 is not allowed: must be a number >= 0"),
    ([], {"data.refit": True}, "data.refit=true leaves no val split, but optimized_metric=val/acc"),
    ([], {"data.prefetch_factor": 0}, "data.prefetch_factor=0 is not allowed: must be null or an integer >= 1"),
    ([], {"data.prefetch_factor": 2}, "data.prefetch_factor needs worker processes: set data.num_workers >= 1"),
    (TABLE, {"data.fit_rows": 0}, "data.fit_rows=0 is not allowed: must be an integer >= 1"),
    (TABLE, {"data.max_categories": 1}, "data.max_categories=1 is not allowed: must be an integer >= 2"),
    (TABLE, {"data.min_frequency": 0}, "data.min_frequency=0 is not allowed: must be an integer >= 1"),
    (TABLE, {"data.split_column": ""}, "data.split_column='' is not allowed: must be null or a column name"),
    (TABLE, {"data.convert": 1}, "data.convert=1 is not allowed: must be true or false"),
    (TABLE, {"data.convert": True, "data.sampler": "weighted"}, "data.sampler='weighted' needs the table in memory"),
    (TABLE, {"data.smooth_sigma": 1.0}, r"data.smooth_sigma=1.0 blurs images: it needs data.image_shape=\[C,H,W\]"),
    (["data=images", f"data.path={HERE}"], {"data.channels": 2}, r"data.channels=2 is not allowed: must be 1 \("),
    (["data=images", f"data.path={HERE}"], {"data.stats_samples": 0}, "data.stats_samples=0 is not allowed"),
    (["data=images", f"data.path={HERE}"], {"data.skip_undecodable": "yes"}, "data.skip_undecodable='yes' is not"),
    (LSTM, {"model.tbptt_steps": 0}, "model.tbptt_steps=0 is not allowed: must be null or an integer >= 1"),
    (LSTM, {"model.tbptt_steps": 8, "trainer.gradient_clip_val": 1.0}, "model.tbptt_steps optimises manually"),
    (["model=resnet"], {"model.blocks": 0}, "model.blocks=0 is not allowed: must be an integer >= 1"),
    ([], {"min_train_steps": 0}, "min_train_steps=0 is not allowed: must be null or an integer >= 1"),
    ([], {"min_train_steps": 100, "trainer.max_steps": 50}, "min_train_steps=100 and trainer.max_steps=50 both set"),
    (["model=fcn"], {"model.kernel_sizes": [8, 0, 3]}, r"model.kernel_sizes=\[8, 0, 3\] is not allowed: must be null"),
    (["model=gpt"], {"model.heads": 0}, "model.heads=0 is not allowed: must be an integer >= 1"),
    (["model=gpt"], {"model.base_width": 0}, "model.base_width=0 is not allowed: must be an integer >= 1"),
    (["model=gpt"], {"model.output_multiplier": 0}, "model.output_multiplier=0 is not allowed: must be a number > 0"),
    (["model=gpt"], {"model.init_std": -0.02}, "model.init_std=-0.02 is not allowed: must be a number > 0"),
    (
        ["model=gpt"],
        {"model.embedding_lr_multiplier": 0},
        "model.embedding_lr_multiplier=0 is not allowed: must be a number > 0",
    ),
    ([], {"finetune.unfreeze_at_epoch": -1}, "finetune.unfreeze_at_epoch=-1 is not allowed: must be null or"),
    ([], {"finetune.backbone_lr_scale": 0}, "finetune.backbone_lr_scale=0 is not allowed: must be a number > 0"),
    ([], {"distill.temperature": 0}, "distill.temperature=0 is not allowed: must be a number > 0"),
    ([], {"adversarial.epsilon": -0.1}, "adversarial.epsilon=-0.1 is not allowed: must be a number > 0"),
    ([], {"adversarial.steps": 0}, "adversarial.steps=0 is not allowed: must be an integer >= 1"),
    ([], {"interpret.samples": -1}, "interpret.samples=-1 is not allowed: must be an integer >= 0"),
    ([], {"typo": 1}, "unknown top-level key"),
    ([], {"data.val_fraction": 0.5, "data.test_fraction": 0.5}, r"data.val_fraction=0.5 \+ data.test_fraction=0.5"),
    ([], {"data.task": "regression"}, "data.stratify=True needs class labels, but data.task=regression"),
    (
        [],
        {"trainer.precision": "bf16-mixed", "trainer.gradient_clip_val": 1.0},
        "Lightning cannot clip the gradients of a fused optimizer under mixed precision",
    ),
]


@pytest.fixture(scope="session")
def composed(tmp_path_factory):
    """compose(overrides) once per distinct overrides in the session (about 0.2 s each), a fresh copy each call."""
    root = tmp_path_factory.mktemp("composed")
    compose_once = functools.cache(lambda overrides: compose(list(overrides), root))
    return lambda overrides: copy.deepcopy(compose_once(tuple(overrides)))


def with_values(cfg, values: dict):
    for key, value in values.items():
        OmegaConf.update(cfg, key, value, force_add=True)
    return cfg


@pytest.mark.parametrize(("overrides", "message"), BAD_CONFIGS, ids=[" ".join(o) for o, _ in BAD_CONFIGS])
def test_each_new_rule_refuses_its_bad_value_naming_the_key(overrides, message, composed):
    with pytest.raises(ConfigError, match=message):
        check(composed(overrides))


@pytest.mark.parametrize(("overrides", "values", "message"), BAD_VALUES_ON, ids=[str(v) for _, v, _ in BAD_VALUES_ON])
def test_each_rule_without_a_case_above_refuses_its_bad_value(overrides, values, message, composed):
    with pytest.raises(ConfigError, match=message):
        check(with_values(composed(overrides), values))


def refused_by(cfg) -> str | None:
    """The rule `check(cfg)` stops at: a RULES key, or a cross-key check's name (None when cfg passes)."""
    for rule in CROSS_KEY_CHECKS:
        try:
            rule(cfg)
        except ConfigError as error:  # value_rules says "KEY=VALUE is not allowed: ..."
            return str(error).partition("=")[0] if rule is value_rules else rule.__name__
    return None


def test_every_rule_and_cross_key_check_has_a_bad_value_in_the_tests(composed):
    """A rule added without a bad value in BAD_CONFIGS, BAD_VALUES_ON or test_cli.BAD_VALUES fails here: which rule
    refuses each case is found by running the rules one at a time, so a case that some other rule happens to
    refuse first does not count for the rule it was written for."""
    cases = [composed(overrides) for overrides, _ in BAD_CONFIGS]
    cases += [with_values(composed(overrides), values) for overrides, values, _ in BAD_VALUES_ON]
    cases += [with_values(composed([]), values) for values, _ in BAD_VALUES]
    covered = {refused_by(cfg) for cfg in cases} | set(BOOLEAN_KEYS)  # test_every_boolean_knob_takes_true_or_false
    rules = [key for key, _, _ in RULES] + [rule.__name__ for rule in CROSS_KEY_CHECKS if rule is not value_rules]
    assert [rule for rule in rules if rule not in covered] == []


@pytest.mark.parametrize("key", BOOLEAN_KEYS)
def test_every_boolean_knob_takes_true_or_false_only(key, tmp_path):
    cfg = compose([], tmp_path)
    OmegaConf.update(cfg, key, "flase", force_add=True)
    with pytest.raises(ConfigError, match=f"{key}='flase' is not allowed: must be true or false"):
        check(cfg)


GOOD_SETTINGS = {
    "study_name": "s",
    "storage": None,
    "n_trials": 2,
    "objectives": ["val/acc"],
    "directions": ["maximize"],
    "sampler": {"_target_": "optuna.samplers.TPESampler", "seed": 0, "n_startup_trials": 5},
    "pruner": {"_target_": "optuna.pruners.MedianPruner", "n_warmup_steps": 2},
    "max_failures": 1,
    "params": {},
}

BAD_SWEEPER_SETTINGS = [
    ({"n_trials": 0}, "hydra.sweeper.n_trials=0: must be an integer >= 1"),
    ({"max_failures": -1}, "hydra.sweeper.max_failures=-1: must be an integer >= 0"),
    ({"torch_threads": 0}, "hydra.sweeper.torch_threads=0: must be null or an integer >= 1"),
    ({"study_name": ""}, "hydra.sweeper.study_name='': must be a non-empty name"),
    ({"storage": "redis://host/0"}, r"hydra.sweeper.storage='redis://host/0': must be null \(a journal"),
    ({"objectives": ["acc"]}, r"hydra.sweeper.objectives=\['acc'\]: must be one or more metrics.json keys"),
    ({"directions": ["maximise"]}, "hydra.sweeper.directions=.*: one of maximize | minimize per objective"),
    ({"directions": ["maximize", "minimize"]}, "hydra.sweeper.directions=.*: one of maximize | minimize per"),
    ({"sampler": {"_target_": "sklearn.Random"}}, "hydra.sweeper.sampler._target_='sklearn.Random': must be null"),
    ({"pruner": {"_target_": "optuna.pruners.MedianPruner", "n_warmup_steps": -1}}, "pruner.n_warmup_steps=-1"),
    ({"sampler": {"_target_": "optuna.samplers.TPESampler", "n_startup_trials": -3}}, "sampler.n_startup_trials=-3"),
    (
        {"objectives": ["val/acc", "model/params"], "directions": ["maximize", "minimize"]},
        "hydra.sweeper.pruner: Optuna prunes single-objective studies only",
    ),
    ({"selection": {"rule": "worst"}}, "hydra.sweeper.selection.rule='worst': must be one_se | best"),
    ({"selection": {"rule": "best", "refit": "maybe"}}, "hydra.sweeper.selection.refit='maybe': must be true or"),
    (
        {"selection": {"baselines": "always"}},
        "hydra.sweeper.selection.baselines='always': must be true, false or compete",
    ),
    ({"selection": {"rule": "best", "cost": "flops"}}, "hydra.sweeper.selection.cost='flops': must be a metrics"),
    ({"selection": {"rule": "best", "refitt": True}}, "hydra.sweeper.selection.refitt: unknown; the keys are rule"),
    (
        {"selection": {"rule": "best"}, "objectives": ["val/acc", "model/params"], "directions": ["max"] * 2},
        "hydra.sweeper.directions",
    ),
    (
        {"selection": {"rule": "one_se"}, "pruner": None, "objectives": ["val/acc", "model/params"]}
        | {"directions": ["maximize", "minimize"]},
        "hydra.sweeper.selection picks one winner: it needs a single objective",
    ),
    ({"nested_folds": 1, "selection": {"rule": "one_se"}}, r"hydra.sweeper.nested_folds=1: null, or an integer >= 2"),
    ({"nested_folds": 3}, "hydra.sweeper.nested_folds=3: null, or an integer >= 2 with hydra.sweeper.selection set"),
]


@pytest.mark.parametrize(("settings", "message"), BAD_SWEEPER_SETTINGS, ids=[str(s) for s, _ in BAD_SWEEPER_SETTINGS])
def test_each_sweeper_setting_is_checked_before_optuna_loads(settings, message):
    check_sweeper(GOOD_SETTINGS)  # the base passes: each case fails for its own key
    with pytest.raises(ConfigError, match=message):
        check_sweeper({**GOOD_SETTINGS, **settings})


def sweep_config(search: str, *overrides: str):
    from hydra.core.hydra_config import HydraConfig

    cfg = compose_with_hydra([f"hparams_search={search}", *overrides])
    HydraConfig.instance().set_config(cfg)  # hydra.sweep.dir's ${hydra:...}: not left to whichever test ran before
    return cfg, OmegaConf.to_container(cfg.hydra.sweeper, resolve=False)


BAD_SEARCHES = [
    ("tpe", {"params": {"lr": "tag(log, interval(-1.0, 0.1))"}}, "hydra.sweeper.params.lr: lr=-1.0 is not allowed"),
    ("tpe", {"params": {"model.dropout": "interval(0.0, 1.0)"}}, r"params.model.dropout: model.dropout=1.0 is not"),
    ("tpe", {"params": {"optimizer": "choice(adamw, adamx)"}}, "params.optimizer: 'adamx' is not an option of"),
    (
        "model_selection",
        {"conditional": {"model=cnnn": {"model.channels": "choice([8,16])"}}},
        "hydra.sweeper.conditional.model=cnnn: 'cnnn' is not an option of model/",
    ),
    (
        "model_selection",
        {"conditional": {"model=resnet": {"model.blocks": "range(0, 2)"}}},
        "hydra.sweeper.conditional.model=resnet.model.blocks: model.blocks=0 is not allowed",
    ),
]


@pytest.mark.parametrize(("search", "change", "message"), BAD_SEARCHES, ids=[m[:40] for _, _, m in BAD_SEARCHES])
def test_every_value_a_search_space_can_set_is_checked_before_the_first_trial(search, change, message):
    cfg, settings = sweep_config(search)
    check_search(cfg, settings)  # the bundled search passes
    with pytest.raises(ConfigError, match=message):
        check_search(cfg, {**settings, **change})


def test_the_one_se_rule_needs_cross_validated_trials():
    cfg, settings = sweep_config("model_selection", "data.num_folds=null")
    with pytest.raises(ConfigError, match="selection.rule=one_se needs each trial's standard error: set data.num"):
        check_search(cfg, settings)
    check_search(cfg, {**settings, "selection": {"rule": "best"}})


@pytest.mark.parametrize("search", sorted(p.stem for p in (CONF_DIR / "hparams_search").glob("*.yaml")))
def test_every_bundled_search_passes_its_checks(search):
    """No false refusal: the rules must let every search the README documents run."""
    cfg, settings = sweep_config(search)
    check_sweeper(settings)
    check_search(cfg, settings)


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml")))
def test_every_bundled_experiment_passes_the_rules(experiment, tmp_path):
    check(compose([f"experiment={experiment}"], tmp_path))


def test_a_context_longer_than_a_split_is_refused_before_tokenising(tmp_path):
    from hyperlab.data.tokens import TokenDataModule

    for name, size in (("a.txt", 5000), ("b.txt", 300), ("c.txt", 300)):
        (tmp_path / name).write_text("x" * size)
    data = TokenDataModule(
        paths=[str(tmp_path)], tokenizer="bytes", context=512, val_fraction=0.34, test_fraction=0.3,
        cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    with pytest.raises(ConfigError, match="data.context=512: the .* split's files hold 300 bytes, fewer than one"):
        data.prepare_data()
    assert not (tmp_path / "cache").exists()


NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has the GPU the option asks for")


@NO_CUDA
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["trainer=gpu"], "trainer=gpu: trainer.accelerator=gpu needs a CUDA GPU and this machine has none"),
        (["trainer=fsdp"], "trainer=fsdp: trainer.strategy=fsdp needs a CUDA GPU"),
        (["trainer.precision=16-mixed"], "trainer.precision=16-mixed: float16 mixed precision needs a GPU"),
        (["trainer=cpu", "trainer.precision=16"], "trainer.precision=16: float16 mixed precision needs a GPU"),
    ],
)
def test_a_strategy_needing_absent_hardware_names_the_option_typed(overrides, message, tmp_path):
    from hyperlab.builders.hardware import refuse_missing_hardware

    cfg = compose_with_hydra(overrides)
    with pytest.raises(ConfigError, match=message):
        refuse_missing_hardware(cfg.trainer, cfg.hydra.runtime.choices.trainer)
    refuse_missing_hardware(compose([], tmp_path).trainer)  # the default trainer passes


# --- through the command line: exit status, the last line, no traceback, nothing written -------------------------

SWEEP = ["-m", "hparams_search=model_selection"]
TPE = ["-m", "hparams_search=tpe"]


def fast(args: list[str], key: str):
    return pytest.param(args, key, id=" ".join(args))


def slow(args: list[str], key: str):
    return pytest.param(args, key, id=" ".join(args), marks=pytest.mark.slow)


# One per key family; five run in the fast tier (a subprocess each, ~0.5 s), the rest in the slow tier
BAD_COMMANDS = [
    fast(["model=gpt", "data=stdlib", "data.context=0"], "data.context"),
    slow(["data.eval_batch_size=0"], "data.eval_batch_size"),
    slow(["model=gpt", "data=stdlib", "model.heads=5"], "model.heads"),
    slow(["model=gpt", "data=stdlib", "model.parametrization=mup", "model.base_width=100"], "model.base_width"),
    fast(["data=table", "data.path=/no/such.csv", "data.target=y"], "data.path"),
    fast(["hydra.sweeper.params.model='choice(mlp)'"], "hydra.sweeper.params.model sets a search space"),
    slow(["data=stdlib", "data.paths=[/no/corpus]"], "data.paths"),
    slow(["model.spectral_norm=yes"], "model.spectral_norm"),
    slow(["scheduler=cosine", "scheduler.warmup_steps=10", "trainer.max_steps=10"], "scheduler.warmup_steps"),
    fast([*TPE, "hydra.sweeper.n_trials=0"], "hydra.sweeper.n_trials"),
    slow([*TPE, "hydra.sweeper.pruner.n_warmup_steps=-1"], "hydra.sweeper.pruner.n_warmup_steps"),
    slow([*TPE, "hydra.sweeper.sampler._target_=random.Random"], "hydra.sweeper.sampler._target_"),
    slow([*TPE, "hydra.sweeper.storage=redis://localhost/0"], "hydra.sweeper.storage"),
    fast([*TPE, "hydra.sweeper.params.lr='interval(-1.0, 0.1)'"], "hydra.sweeper.params.lr"),
    slow([*TPE, "hydra.sweeper.params.optimizer='choice(adamw, adamx)'"], "hydra.sweeper.params.optimizer"),
    fast([*SWEEP, "hydra.sweeper.selection.rule=worst"], "hydra.sweeper.selection.rule"),
    slow([*SWEEP, "hydra.sweeper.selection.refit=maybe"], "hydra.sweeper.selection.refit"),
    slow([*SWEEP, "hydra.sweeper.nested_folds=1"], "hydra.sweeper.nested_folds"),
    slow([*SWEEP, "data.num_folds=null"], "data.num_folds"),
    slow([*SWEEP, "data.eval_batch_size=0"], "data.eval_batch_size"),
]


def nothing_written(root: Path) -> list[Path]:
    """Checkpoints, metrics, a study's storage or its multirun.yaml, cached shards: what work would leave."""
    patterns = ("*.ckpt", "metrics.json", "study.journal", "*.db", "multirun.yaml", "manifest.json", "*.npy")
    return [p for pattern in patterns for p in root.rglob(pattern)]


@pytest.mark.parametrize(("args", "key"), BAD_COMMANDS)
def test_a_bad_command_exits_1_with_one_line_naming_the_key_and_writes_nothing(args, key, tmp_path):
    result = run_cli("train.py", *args, f"paths.log_dir={tmp_path}", f"++data.cache_dir={tmp_path / 'cache'}")
    last = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else ""
    assert result.returncode == 1, result.stderr[-2000:]
    assert last.startswith("error: ") and key in last, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert nothing_written(tmp_path) == []


@NO_CUDA
@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "key"),
    [(["trainer=gpu"], "trainer=gpu"), ([*TPE, "trainer=fsdp"], "trainer=fsdp"), (["trainer.precision=16-mixed"], "")],
)
def test_absent_hardware_exits_1_with_one_line_before_any_data_is_prepared(args, key, tmp_path):
    result = run_cli("train.py", *args, f"paths.log_dir={tmp_path}")
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 1 and last.startswith("error: ") and key in last, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and nothing_written(tmp_path) == []


def test_a_finished_study_rerun_says_it_runs_nothing_and_reports_again(monkeypatch):
    """The documented way to report a study again: the same command; it exits 0 and says no trial ran."""
    import optuna

    from hyperlab.search import sweeper

    printed = []
    monkeypatch.setattr(sweeper.console, "say", printed.append)
    sweep = sweeper.OptunaSweep(**{**GOOD_SETTINGS, "sampler": None, "pruner": None})
    study = optuna.create_study(study_name="s", direction="maximize")
    for value in (0.5, 0.6):
        study.add_trial(optuna.trial.create_trial(value=value))
    sweep._say_if_nothing_to_run(study, 2)
    sweep._say_if_nothing_to_run(study, 3)  # a trial still to run: nothing said
    assert printed == [
        "study s already has 2 finished trials (hydra.sweeper.n_trials=2): no trial to run; its report again. "
        "Raise hydra.sweeper.n_trials to run more."
    ]


def test_settings_copy_is_not_mutated_by_the_checks():
    cfg, settings = sweep_config("model_selection")
    before = copy.deepcopy(settings)
    check_sweeper(settings)
    check_search(cfg, settings)
    assert settings == before
    with open_dict(cfg):
        assert "hydra" in cfg  # the caller's config keeps its hydra node
