"""hyperlab: Hydra-composed PyTorch Lightning training where every decision is a config knob.

Importing the package is cheap (no torch): `train.py --help` and `--cfg job` stay fast.
"""

__version__ = "0.1.0"
