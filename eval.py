"""Test (and predict with) a checkpoint using the config it was trained with:
`python eval.py ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt`. Writes metrics.json and predictions.csv.
"""

import hydra
from omegaconf import DictConfig

from hyperlab.config.cli import reported_errors
from hyperlab.config.rules import check


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def main(cfg: DictConfig) -> dict:
    with reported_errors():
        check(cfg)
        from hyperlab.evaluate import evaluate

        return evaluate(cfg)


if __name__ == "__main__":
    main()
