"""`evaluate(cfg)`: rebuild a trained model from the config stored in its checkpoint, test it, predict."""

import csv
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from hyperlab import console, runs
from hyperlab.builders import classical, load_module
from hyperlab.builders.hardware import refuse_missing_hardware
from hyperlab.contracts import TensorSplits
from hyperlab.errors import ConfigError
from hyperlab.training.supervised import classification_metrics

console.quiet_lightning()


def write_predictions(path: Path, indices, targets: torch.Tensor, probs: torch.Tensor, names=None) -> None:
    """One row per test sample: index, target, prediction and, for classifiers, each class probability; with
    `names` (labels that were strings, e.g. a table's) the target, prediction and columns by class name."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        if probs.ndim == 1:  # regression: the prediction itself (standardised units, as the target)
            writer.writerow(["index", "target", "prediction"])
            writer.writerows(
                [int(i), f"{t:.6f}", f"{p:.6f}"]
                for i, t, p in zip(indices, targets.tolist(), probs.tolist(), strict=True)
            )
            return
        label = names.__getitem__ if names else (lambda c: c)
        writer.writerow(["index", "target", "prediction", *(f"prob_{label(c)}" for c in range(probs.shape[1]))])
        for index, target, p in zip(indices, targets.tolist(), probs.tolist(), strict=True):
            predicted = max(range(len(p)), key=p.__getitem__)
            writer.writerow([int(index), label(target), label(predicted), *(f"{v:.6f}" for v in p)])


def test_targets(datamodule) -> torch.Tensor:
    """The test split's targets: from memory (TensorSplits), or read through the test loader (a streamed split)."""
    if isinstance(datamodule, TensorSplits):
        return datamodule.splits["test"].tensors[1]
    return torch.cat([batch[1] for batch in datamodule.test_dataloader()])


def ensemble_members(run_dir: Path, top_k: int, rank_by: str) -> list[str]:
    """The checkpoints to ensemble from a directory: every fold's best checkpoint of a cross-validated run
    (`data.num_folds`, in fold order), or the best checkpoints of the `top_k` jobs of a sweep ranked by their
    metrics.json `rank_by` (highest first; lowest first for a loss)."""
    if (run_dir / "metrics.json").is_file():
        folds = runs.read_metrics(run_dir).get("folds")
        if folds and all(f.get("ckpt/best") for f in folds):
            return [f["ckpt/best"] for f in folds]
    jobs = [runs.read_metrics(p.parent) for p in sorted(run_dir.glob("*/metrics.json"))]
    jobs = [j for j in jobs if j.get("ckpt/best") and j.get(rank_by) is not None]
    if not jobs:
        raise ConfigError(
            f"ckpt_path={str(run_dir)!r} is a directory but neither a cross-validated run (metrics.json 'folds') "
            f"nor a sweep whose jobs have a best checkpoint and {rank_by!r} in their metrics.json"
        )
    jobs.sort(key=lambda j: j[rank_by], reverse="loss" not in rank_by)
    return [j["ckpt/best"] for j in jobs[:top_k]]


def evaluate(cfg: DictConfig) -> dict:
    """Test one checkpoint; or, for a cross-validated run or a sweep directory, each member checkpoint and their
    ensemble. Members share the test split (fixed data.split_seed), so all are scored on the same rows."""
    refuse_missing_hardware(cfg.trainer)
    output_dir = Path(cfg.paths.output_dir)
    trainer = instantiate(cfg.trainer, logger=False, callbacks=[], default_root_dir=str(output_dir))
    target = Path(cfg.ckpt_path)
    if target.suffix == ".skops":  # a classical model a model selection chose (baselines=compete)
        metrics = evaluate_classical(target, output_dir if cfg.predict else None)
    elif target.is_dir():
        members = ensemble_members(target, cfg.top_k, cfg.rank_by)
        metrics = evaluate_ensemble(trainer, members, output_dir if cfg.predict else None)
    else:
        datamodule, module = load_module(cfg.ckpt_path)
        metrics = dict(trainer.test(module, datamodule=datamodule, verbose=False)[0])
        if cfg.predict and module.task != "language_model":  # (windows, vocab, 64) per-character probabilities
            probs = torch.cat(trainer.predict(module, datamodule=datamodule))
            targets = test_targets(datamodule)
            names = getattr(datamodule, "class_names", None)
            write_predictions(output_dir / "predictions.csv", datamodule.indices["test"], targets, probs, names)
    metrics.update({"ckpt_path": str(cfg.ckpt_path), **runs.provenance(Path(cfg.paths.root_dir))})
    runs.write_metrics(output_dir, metrics)
    return metrics


def evaluate_classical(path: Path, predictions_dir: Path | None) -> dict:
    """A stored scikit-learn / aeon pipeline on its search's test rows: the same test/* metrics and predictions.csv
    as a network's."""
    model, rows = classical.load(path), classical.test_split(path)
    probs = classical.probabilities(model, rows["x"], rows["num_classes"])
    targets = torch.as_tensor(rows["y"]).long()
    metrics = {k: v.item() for k, v in classification_metrics(rows["num_classes"], "test/")(probs, targets).items()}
    if predictions_dir is not None:
        write_predictions(predictions_dir / "predictions.csv", rows["rows"], targets, probs, rows["names"])
    return metrics


def evaluate_ensemble(trainer, paths: list[str], predictions_dir: Path | None) -> dict:
    """Members' test metrics, then the ensemble's: mean of the members' probabilities (`test/*`), and the
    majority vote's accuracy (`test/vote_acc`, ties to the lowest class)."""
    members, member_probs = [], []
    for path in paths:
        datamodule, module = load_module(path)
        members.append({"ckpt_path": path, **trainer.test(module, datamodule=datamodule, verbose=False)[0]})
        member_probs.append(torch.cat(trainer.predict(module, datamodule=datamodule)))
    targets = test_targets(datamodule)
    probs = torch.stack(member_probs).mean(0)  # (members, N, C) -> (N, C)
    num_classes = probs.shape[1]
    metrics = {k: v.item() for k, v in classification_metrics(num_classes, "test/")(probs, targets).items()}
    votes = torch.stack([p.argmax(1) for p in member_probs])  # (members, N)
    majority = torch.nn.functional.one_hot(votes, num_classes).sum(0).argmax(1)
    metrics["test/vote_acc"] = (majority == targets).float().mean().item()
    if predictions_dir is not None:
        names = getattr(datamodule, "class_names", None)
        write_predictions(predictions_dir / "predictions.csv", datamodule.indices["test"], targets, probs, names)
    return {**metrics, "members": members}
