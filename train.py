"""Train a model: `python train.py [group=option ...] [key=value ...]`; `python train.py --help` for the groups.

Only hydra and omegaconf load before the config is composed and checked, so `--help`, `--cfg job` and bad input
answer in well under a second; torch and Lightning load inside `hyperlab.train`.
"""

import hydra
from omegaconf import DictConfig

from hyperlab.config import check, reported_errors


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    with reported_errors():
        check(cfg)
        from hyperlab.train import train

        return train(cfg)


if __name__ == "__main__":
    main()
