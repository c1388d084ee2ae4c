"""Batch augmentation for images, run on the device the batch trains on (kornia), train split only.

The data module applies it in `on_after_batch_transfer` while training; val/test/predict batches pass untouched.
"""

from collections.abc import Sequence

from torch import Tensor, nn


class ImageAugmentation(nn.Module):
    """Per-sample random flips, affine (rotation, translation, scale), resized crop and erasing of (B, C, H, W).

    Each transform is left out when its knob is at the identity; the kornia pipeline is built by `prepare` once
    the image size is known (crops resize back to it), before training, so that kornia's own argument checks
    fail before the first step.
    """

    def __init__(
        self,
        hflip: float = 0.0,
        vflip: float = 0.0,
        rotation: float = 0.0,
        translate: float = 0.0,
        scale: Sequence[float] = (1.0, 1.0),
        crop_scale: Sequence[float] = (1.0, 1.0),
        erasing: float = 0.0,
    ):
        super().__init__()
        for key, p in (("hflip", hflip), ("vflip", vflip), ("erasing", erasing)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"augment.{key}={p} is a probability: must be in [0, 1]")
        self.knobs = dict(
            hflip=hflip, vflip=vflip, rotation=rotation, translate=translate, scale=tuple(scale),
            crop_scale=tuple(crop_scale), erasing=erasing,
        )  # fmt: skip
        self.pipeline: nn.Module | None = None

    def build(self, size: tuple[int, int]) -> nn.Module:
        import kornia.augmentation as K  # loads only when augmentation is on

        k = self.knobs
        steps: list[nn.Module] = []
        if k["hflip"]:
            steps.append(K.RandomHorizontalFlip(p=k["hflip"]))
        if k["vflip"]:
            steps.append(K.RandomVerticalFlip(p=k["vflip"]))
        if k["rotation"] or k["translate"] or k["scale"] != (1.0, 1.0):
            translate = (k["translate"], k["translate"]) if k["translate"] else None
            steps.append(K.RandomAffine(degrees=k["rotation"], translate=translate, scale=k["scale"], p=1.0))
        if k["crop_scale"] != (1.0, 1.0):
            steps.append(K.RandomResizedCrop(size, scale=k["crop_scale"], p=1.0))
        if k["erasing"]:
            steps.append(K.RandomErasing(p=k["erasing"]))
        return nn.Sequential(*steps)

    def prepare(self, sample_shape: Sequence[int]) -> None:
        """Build the pipeline for samples of shape (C, H, W)."""
        if len(sample_shape) != 3:
            raise ValueError(f"augment=image needs image samples (C, H, W); this dataset gives {tuple(sample_shape)}")
        self.pipeline = self.build(tuple(sample_shape[-2:]))

    def forward(self, x: Tensor) -> Tensor:
        if self.pipeline is None:
            self.prepare(x.shape[1:])
        return self.pipeline.to(x.device)(x)


def on_training_batches(augment, trainer, batch: tuple):
    """`batch` with its inputs augmented on the device they train on, for training batches only; val, test and
    predict batches pass untouched (a data module's on_after_batch_transfer)."""
    if augment is None or trainer is None or not trainer.training:
        return batch
    x, *rest = batch
    return (augment(x), *rest)
