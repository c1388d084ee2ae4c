"""Train a model: `python train.py [group=option ...] [key=value ...]`; `python train.py --help` for the groups.

Only hydra and omegaconf load before the config is composed and checked, so `--help` (hyperlab.config.print_help),
`--cfg job` and bad input answer in well under a second; torch and Lightning load inside `hyperlab.train`.
"""

import sys

import hydra
from omegaconf import DictConfig

from hyperlab.config.cli import print_help, refuse_a_search_space_without_multirun, reported_errors
from hyperlab.config.rules import check


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    with reported_errors():
        check(cfg)
        from hyperlab.train import train

        return train(cfg)


if __name__ == "__main__":
    if {"--help", "-h"} & set(sys.argv[1:]):  # Hydra's own listing takes ~1 s; see print_help
        print_help([arg for arg in sys.argv[1:] if arg not in ("--help", "-h")])
    else:
        refuse_a_search_space_without_multirun(sys.argv[1:])
        main()
