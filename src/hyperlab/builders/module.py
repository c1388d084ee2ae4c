"""The data module, network, loss and LightningModule of a config, each built from its own config node.

`build_module(cfg)` composes them (data first: the network's input shape, output size and the loss's class counts
are read from it); `load_module(path)` rebuilds a trained run from the config stored in its checkpoint. Every
constructor's refusal names its key (hyperlab.config.key_errors).
"""

import functools
import inspect

import lightning as L
import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from hyperlab.analysis import compression, robust
from hyperlab.config.key_errors import key_errors
from hyperlab.contracts import TensorSplits
from hyperlab.errors import ConfigError
from hyperlab.training import parametrization
from hyperlab.training.checkpoints import check_matches, load_checkpoint, stored_config
from hyperlab.training.finetune import load_initial_weights
from hyperlab.training.supervised import Supervised


def build_module(cfg: DictConfig) -> tuple[L.LightningDataModule, Supervised]:
    """The data module and the LightningModule of a composed (or a checkpoint's stored) config."""
    # the optional features, once: a checkpoint written before a feature existed has no key for it
    quantize, adversarial, interpret = cfg.get("quantize"), cfg.get("adversarial"), cfg.get("interpret")
    datamodule = build_datamodule(cfg.data, cfg.get("augment"))
    with key_errors("loss", cfg.loss):
        loss = build_loss(cfg.loss, datamodule)
    net, shape = build_network(cfg.model, datamodule, loss)
    check_task_options(datamodule.task, cfg.loss._target_, quantize, adversarial, interpret)
    check_in_memory_options(datamodule, cfg.loss, quantize, adversarial, interpret)
    prepare_network(net, cfg.get("finetune") or {}, quantize, cfg.get("compile", False), datamodule)
    regularization = cfg.get("regularization") or {}
    module = Supervised(
        net,
        loss,
        optimizer=factory("optimizer", cfg.optimizer),
        scheduler=factory("scheduler", cfg.scheduler) if cfg.get("scheduler") else None,
        task=datamodule.task,
        num_classes=datamodule.num_classes,
        l1=regularization.get("l1", 0.0),
        l2=regularization.get("l2", 0.0),
        no_decay_bias_norm=cfg.get("no_decay_bias_norm", False),
        tbptt_steps=getattr(net, "tbptt_steps", None),
        **distillation_args(cfg.get("distill"), net, datamodule),
        adversary=adversary(adversarial),
        bytes_per_token=getattr(datamodule, "bytes_per_token", None),
        lr_scales=lr_scales(cfg.model, cfg.optimizer, net, **shape),
        val_metrics=(cfg.get("metrics") or {}).get("val", "full"),  # a checkpoint older than the knob: full
        watched=watched_metrics(
            cfg.get("optimized_metric"), cfg.get("trial"), cfg.get("scheduler"), cfg.get("callbacks")
        ),
    )
    return datamodule, module


def watched_metrics(optimized_metric: str | None, trial, scheduler, callbacks) -> list[str]:
    """The val/* keys something reads every epoch or at the end: optimized_metric, a study trial's monitor, the
    plateau schedule's and the callbacks' monitors. Lean validation (metrics.val=lean) computes these too."""
    nodes = [node for node in (callbacks or {}).values() if node is not None and hasattr(node, "get")]
    keys = [optimized_metric, (trial or {}).get("monitor"), (scheduler or {}).get("monitor")]
    keys += [node.get("monitor") for node in nodes]
    return sorted({key for key in keys if isinstance(key, str) and key.startswith("val/")})


def build_datamodule(data: DictConfig, augment_cfg: DictConfig | None) -> L.LightningDataModule:
    """The data module with its splits made now, so that a bad split setting fails before a model is built."""
    with key_errors("augment", augment_cfg):
        augment = instantiate(augment_cfg) if augment_cfg else None
    with key_errors("data", data):
        datamodule = instantiate(data, **({"augment": augment} if augment is not None else {}))
        datamodule.setup("fit")
    if augment is not None:
        with key_errors("augment", augment_cfg):
            augment.prepare(datamodule.input_shape)
    return datamodule


def build_loss(loss_cfg: DictConfig, datamodule) -> torch.nn.Module:
    """The loss, checked against the data's task; `class_weights: balanced` reads the train split's counts."""
    loss_cls = get_class(loss_cfg._target_)
    if datamodule.task not in loss_cls.tasks:
        name = loss_cls.__name__
        raise ConfigError(
            f"loss {name} does not fit data.task={datamodule.task}; losses for it: "
            + {"regression": "loss=mse", "classification": "loss=cross_entropy, loss=bce"}.get(
                datamodule.task, "loss=cross_entropy"
            )
        )
    if loss_cfg.get("class_weights") is None:
        return instantiate(loss_cfg)
    counts = torch.bincount(datamodule.train_targets, minlength=datamodule.num_classes)
    return instantiate(loss_cfg, class_counts=counts)


def build_network(model: DictConfig, datamodule, loss: torch.nn.Module) -> tuple[torch.nn.Module, dict]:
    """The network for the data's input shape and the loss's output size; returns it and those shape arguments."""
    shape = {"in_shape": datamodule.input_shape, "num_classes": loss.out_features(datamodule.num_classes)}
    if datamodule.vocab_size:
        if "vocab_size" not in inspect.signature(get_class(model._target_)).parameters:
            raise ConfigError("this dataset is token ids for language modelling: use model=lstm or model=transformer")
        shape["vocab_size"] = datamodule.vocab_size
    with key_errors("model", model):
        return instantiate(model, **shape), shape


def check_task_options(task: str, loss_target: str, quantize, adversarial, interpret) -> None:
    """Options that need class labels over float inputs, refused for other tasks before anything trains."""
    attack = (adversarial or {}).get("attack")
    samples = (interpret or {}).get("samples")
    for key, value in (("adversarial.attack", attack), ("interpret.samples", samples)):
        if value and task != "classification":
            raise ConfigError(f"{key}={value} needs a classification task; data.task={task}")
    if quantize and task != "classification":
        raise ConfigError(f"quantize={quantize} scores the int8 copy's accuracy: not for data.task={task}")
    if samples and "CrossEntropy" not in loss_target:
        raise ConfigError("interpret.samples attributes one logit per class: it needs loss=cross_entropy")


def check_in_memory_options(datamodule, loss_cfg: DictConfig, quantize, adversarial, interpret) -> None:
    """Options that read the splits as tensors in memory (hyperlab.contracts.TensorSplits), refused by name for a
    data module that streams them (an image folder, a token corpus)."""
    if isinstance(datamodule, TensorSplits):
        return
    wanted = {
        "quantize": quantize,
        "adversarial.attack": (adversarial or {}).get("attack"),
        "interpret.samples": (interpret or {}).get("samples"),
        "loss.class_weights": loss_cfg.get("class_weights"),
    }
    for key, value in wanted.items():
        if value:
            raise ConfigError(
                f"{key}={value} reads the splits as tensors in memory; {type(datamodule).__name__} streams them "
                "(it does not offer hyperlab.contracts.TensorSplits)"
            )


def prepare_network(net: torch.nn.Module, finetune, quantize: str | None, compile: bool, datamodule) -> None:
    """Warm start (finetune.init_from; the seeded init otherwise), the static-quantisation check, compile."""
    if finetune.get("init_from"):
        load_initial_weights(net, finetune.init_from, finetune.get("scope", "all"))
    if quantize == "static":  # find out now, not after training, whether the network allows it
        try:
            compression.prepare_static(net, datamodule.splits["train"].tensors[0][:2])
        except Exception as error:
            raise ConfigError(
                f"quantize=static: {type(net).__name__} cannot be prepared for static quantisation "
                f"({type(error).__name__}: {error}); use quantize=dynamic"
            ) from error
    if compile:
        net.compile()  # nn.Module.compile: compiled at the first call, on the device; state_dict keys unchanged


def lr_scales(model: DictConfig, optimizer: DictConfig, net: torch.nn.Module, **shape) -> dict[str, float] | None:
    """The learning-rate multiplier per parameter: muP's (hyperlab.training.parametrization) when
    model.parametrization=mup, where the network rebuilt at model.base_width tells which of its dimensions grow,
    times the network's own (contracts.PerParameterLearningRates: model.embedding_lr_multiplier)."""
    scales = {}
    if model.get("parametrization", "standard") == "mup":
        base = instantiate(model, width=model.base_width, **shape)
        optimizer_class = get_class(optimizer._target_)
        scales = parametrization.lr_scales(net, base, model.width / model.base_width, optimizer_class)
    for name, multiplier in getattr(net, "lr_multipliers", {}).items():
        scales[name] = scales.get(name, 1.0) * multiplier
    return scales or None


def factory(prefix: str, node: DictConfig) -> functools.partial:
    """The optimizer or scheduler factory of a `_partial_` config. Lightning calls it in configure_optimizers, on
    the real parameters on their device, before the sanity check and the first step; whatever the constructor
    refuses there (`optimizer.momentum=-0.5`) is reported as a ConfigError naming the key."""
    with key_errors(prefix, node):
        partial = instantiate(node)
    return functools.partial(_naming_keys, prefix, node, partial)


def _naming_keys(prefix: str, node: DictConfig, partial, *args, **kwargs):
    with key_errors(prefix, node):
        return partial(*args, **kwargs)


def distillation_args(distill: DictConfig | None, net: torch.nn.Module, datamodule) -> dict:
    """The teacher network of `distill.teacher` (another run's checkpoint, rebuilt from its own config)."""
    if not distill or not distill.get("teacher"):
        return {}
    _, teacher = load_module(distill.teacher)
    sample = datamodule.example_input().repeat(2, *[1] * (len(datamodule.input_shape)))  # B=2: batch norm trains
    student_shape, teacher_shape = net(sample).shape, teacher.net(sample).shape
    if student_shape != teacher_shape:
        raise ConfigError(
            f"distill.teacher={distill.teacher!r} outputs {tuple(teacher_shape)[1:]} per sample, this network "
            f"{tuple(student_shape)[1:]}: teacher and student must predict the same classes"
        )
    return {"teacher": teacher.net, "temperature": distill.temperature, "alpha": distill.alpha}


def adversary(adversarial: DictConfig | None):
    """The attack that replaces each training batch with its adversarial version (adversarial.train), or None."""
    if not adversarial or not adversarial.get("attack") or not adversarial.get("train"):
        return None
    return functools.partial(
        robust.perturb, attack=adversarial.attack, epsilon=adversarial.epsilon, steps=adversarial.steps
    )


def load_module(path: str) -> tuple[L.LightningDataModule, Supervised]:
    """The data module and trained module of a checkpoint, rebuilt from the config stored in it."""
    checkpoint = load_checkpoint(path)
    datamodule, module = build_module(OmegaConf.create(stored_config(checkpoint)))
    check_matches(module, checkpoint, path)
    module.load_state_dict(checkpoint["state_dict"])
    return datamodule, module
