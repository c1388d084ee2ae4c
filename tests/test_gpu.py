"""GPU paths: run with `make test-gpu` on a machine with CUDA; skipped elsewhere (CI has no GPU)."""

import lightning as L
import pytest
import torch

from hyperlab.builders import build_module
from hyperlab.train import train
from tests.conftest import trainer_of

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

GPU = ["trainer=gpu", "callbacks.early_stopping=null", "test=false"]


class NoSyncInSteadyState(L.Callback):
    """Turns torch's sync debug mode to "error" for the training steps after the first `warmup` of each epoch but
    the last, so any host-device synchronisation in a steady-state step raises."""

    def __init__(self, warmup: int = 3):
        self.warmup, self.checked = warmup, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.warmup <= batch_idx < trainer.num_training_batches - 1:
            torch.cuda.set_sync_debug_mode("error")
            self.checked += 1

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.parametrize("model", ["mlp", "resnet"])
def test_steady_state_training_steps_make_no_host_device_sync(model, make_cfg):
    # log_every_n_steps beyond an epoch: the non-finite guard reads its flag at epoch ends only
    cfg = make_cfg(*GPU, f"model={model}", "trainer.max_epochs=2", "trainer.log_every_n_steps=1000")
    datamodule, module = build_module(cfg)
    trainer = trainer_of(cfg)
    watch = NoSyncInSteadyState()
    trainer.callbacks.append(watch)
    try:
        trainer.fit(module, datamodule=datamodule)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert watch.checked == 2 * (trainer.num_training_batches - 4) and trainer.global_step == 40


def test_bf16_mixed_precision_runs_the_forward_in_bfloat16(make_cfg):
    cfg = make_cfg(*GPU, "trainer.precision=bf16-mixed", "trainer.max_epochs=1")
    datamodule, module = build_module(cfg)
    dtypes = []
    module.net.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    trainer_of(cfg).fit(module, datamodule=datamodule)
    assert set(dtypes) == {torch.bfloat16}


def test_compiled_network_trains_like_the_eager_one(make_cfg):
    from torch._dynamo.utils import counters

    eager = train(make_cfg(*GPU, "trainer.max_epochs=2"))
    frames = counters["frames"]["ok"]
    compiled = train(make_cfg(*GPU, "trainer.max_epochs=2", "compile=true"))
    assert counters["frames"]["ok"] > frames  # dynamo compiled the forward: not an eager run under another name
    assert compiled == pytest.approx(eager, abs=0.02)


def test_channels_last_resnet_trains_on_the_gpu(make_cfg):
    cfg = make_cfg(*GPU, "model=resnet", "model.channels_last=true", "trainer.max_epochs=3")
    datamodule, module = build_module(cfg)
    layouts = []
    module.net.features[0].register_forward_hook(
        lambda m, i, o: layouts.append(o.is_contiguous(memory_format=torch.channels_last))
    )
    trainer_of(cfg).fit(module, datamodule=datamodule)
    assert layouts and all(layouts)  # the stem's activations are NHWC on the device, every step
    assert module.net.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert trainer_of(cfg).validate(module, datamodule=datamodule, verbose=False)[0]["val/acc"] > 0.8
