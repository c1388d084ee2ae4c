"""Token data (data=stdlib, data.paths) and the GPT, on small corpora the tests write."""

import json
import math
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hyperlab.builders import build_module
from hyperlab.data.tokens import TokenDataModule, WindowOffsets, split_files
from hyperlab.models import GPT
from tests.conftest import ROOT, trainer_of


def write_corpus(folder: Path, files: int = 30, lines: int = 40, seed: int = 0) -> Path:
    """Python-like text files with some unicode, so bytes and tokens differ."""
    rng = random.Random(seed)
    words = ["def", "return", "self", "for", "in", "if", "else", "import", "x", "y", "value", "naïve", "λ"]
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        text = "\n".join(" ".join(rng.choice(words) for _ in range(rng.randint(3, 9))) for _ in range(lines))
        (folder / f"module_{i:03d}.py").write_text(text + "\n", encoding="utf-8")
    return folder


@pytest.fixture
def corpus(tmp_path):
    return write_corpus(tmp_path / "corpus")


def datamodule(corpus: Path, tmp_path: Path, **overrides) -> TokenDataModule:
    settings = dict(paths=[str(corpus)], tokenizer="bytes", context=16, batch_size=4, eval_batch_size=8)
    settings.update(batches_per_epoch=5, eval_windows=None, val_fraction=0.1, test_fraction=0.1)
    dm = TokenDataModule(**{**settings, "cache_dir": str(tmp_path / "cache"), **overrides})
    dm.prepare_data()
    dm.setup("fit")
    return dm


@pytest.mark.parametrize("tokenizer", ["bytes", "bpe"])
def test_shards_round_trip_to_the_original_text(tokenizer, corpus, tmp_path):
    dm = datamodule(corpus, tmp_path, tokenizer=tokenizer, vocab_size=300)
    for split, counts in dm.manifest["splits"].items():
        original = "".join((corpus / name).read_text(encoding="utf-8") for name in counts["files"])
        assert dm.tokenizer().decode(np.asarray(dm.shards[split])) == original
        assert counts["bytes"] == len(original.encode("utf-8"))
        assert counts["tokens"] == len(dm.shards[split])  # the manifest's count is the shard's length
    if tokenizer == "bpe":  # merges make tokens longer than a byte
        assert dm.bytes_per_token["train"] > 1.5


def test_the_splits_are_disjoint_whole_files_that_cover_the_corpus(corpus, tmp_path):
    dm = datamodule(corpus, tmp_path)
    splits = {name: set(c["files"]) for name, c in dm.manifest["splits"].items()}
    assert not (splits["train"] & splits["val"] or splits["train"] & splits["test"] or splits["val"] & splits["test"])
    assert set().union(*splits.values()) == {p.name for p in corpus.iterdir()}
    assert (len(splits["val"]), len(splits["test"])) == (3, 3)
    assert split_files(sorted(corpus.iterdir()), 0.1, 0.1, 1) != split_files(sorted(corpus.iterdir()), 0.1, 0.1, 0)


def test_a_second_setup_reads_the_cache_and_other_files_miss_it(corpus, tmp_path):
    first = datamodule(corpus, tmp_path)
    (corpus / "module_000.py").write_text("changed\n")
    second = datamodule(corpus, tmp_path)
    assert first.folder != second.folder and first.manifest["files_sha256"] != second.manifest["files_sha256"]
    again = datamodule(corpus, tmp_path)
    assert again.folder == second.folder
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted([first.folder.name, second.folder.name])


def test_a_windowed_batch_targets_are_its_inputs_shifted_by_one(corpus, tmp_path):
    dm = datamodule(corpus, tmp_path)
    tokens = np.asarray(dm.shards["train"])
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == y.shape == (4, 16) and x.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])
    for row in range(4):  # each row is a contiguous window of the shard
        window = torch.cat([x[row], y[row, -1:]]).numpy()
        hits = np.flatnonzero((np.lib.stride_tricks.sliding_window_view(tokens, 17) == window).all(1))
        assert len(hits) >= 1


def test_two_ranks_read_disjoint_windows_and_epochs_differ():
    sweep = [WindowOffsets(1000, 16, None, seed=0, rank=r, world=2).offsets() for r in (0, 1)]
    assert not set(sweep[0]) & set(sweep[1]) and sorted([*sweep[0], *sweep[1]]) == list(range(0, 984, 16))
    train = [WindowOffsets(1000, 16, 8, seed=0, rank=r, world=2) for r in (0, 1)]
    draw = WindowOffsets(1000, 16, 16, seed=0).offsets()  # the same seeded draw, every second one per rank
    assert list(train[0].offsets()) == list(draw[0::2]) and list(train[1].offsets()) == list(draw[1::2])
    train[0].set_epoch(1)
    assert list(train[0].offsets()) != list(draw[0::2])


def test_bits_per_byte_is_the_loss_over_bytes_per_token_and_ln2(corpus, tmp_path, make_cfg):
    cfg = make_cfg(
        "data=stdlib",
        f"data.paths=[{corpus}]",
        "data.tokenizer=bpe",
        "data.vocab_size=300",
        "data.context=16",
        "data.val_fraction=0.1",
        "data.test_fraction=0.1",
        f"data.cache_dir={tmp_path / 'cache'}",
        "model=gpt",
        "model.width=32",
        "model.depth=1",
        "model.heads=2",
        "optimized_metric=val/bpb",
    )
    datamodule, module = build_module(cfg)
    metrics = trainer_of(cfg).validate(module, datamodule=datamodule, verbose=False)[0]
    splits = datamodule.manifest["splits"]["val"]
    expected = metrics["val/loss"] * splits["tokens"] / (splits["bytes"] * math.log(2))
    assert metrics["val/bpb"] == pytest.approx(expected, rel=1e-6)
    assert splits["bytes"] / splits["tokens"] > 1.5  # BPE: more than a byte per token


def gpt(**kwargs) -> GPT:
    torch.manual_seed(0)
    return GPT((16,), 50, vocab_size=50, width=32, depth=2, heads=4, **kwargs)


def test_the_gpt_is_causal_and_its_embeddings_are_tied():
    net = gpt().eval()
    ids = torch.randint(0, 50, (2, 16))
    changed = ids.clone()
    changed[:, 10:] = (changed[:, 10:] + 1) % 50
    before, after = net(ids), net(changed)
    assert before.shape == (2, 16, 50)
    torch.testing.assert_close(before[:, :10], after[:, :10])
    assert not torch.allclose(before[:, 10:], after[:, 10:])
    assert net.head.weight is net.token_embedding.weight


def test_residual_projections_start_smaller_with_depth():
    net = GPT((16,), 50, vocab_size=50, width=64, depth=8, heads=4)
    assert net.blocks[0].attention.proj.weight.std().item() == pytest.approx(0.02 / 4, rel=0.1)
    assert net.blocks[0].attention.qkv.weight.std().item() == pytest.approx(0.02, rel=0.1)


def counted(forward, calls: list):
    def wrapper(*args, **kwargs):
        calls.append(1)
        return forward(*args, **kwargs)

    return wrapper


def test_activation_checkpointing_gives_the_same_loss_and_gradients():
    ids = torch.randint(0, 50, (4, 16))
    results, block_forwards = [], []
    for checkpointing in (False, True):
        net = gpt(activation_checkpointing=checkpointing, dropout=0.0).train()
        calls = []
        for block in net.blocks:  # count each call of the block's own forward (hooks do not see a recompute)
            block.forward = counted(block.forward, calls)
        loss = torch.nn.functional.cross_entropy(net(ids[:, :-1]).flatten(0, 1), ids[:, 1:].flatten())
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in net.parameters()]))
        block_forwards.append(len(calls))
    # the mechanism: each block's forward runs again in the backward pass (recomputed, not stored)
    assert block_forwards == [len(net.blocks), 2 * len(net.blocks)]
    torch.testing.assert_close(results[0][0], results[1][0])
    for plain, recomputed in zip(results[0][1], results[1][1], strict=True):
        torch.testing.assert_close(plain, recomputed)


@pytest.mark.slow
def test_compile_gives_the_same_loss():
    ids = torch.randint(0, 50, (4, 16))
    from torch._dynamo.utils import counters

    eager, compiled = gpt().eval(), gpt().eval()
    compiled.compile()
    frames = counters["frames"]["ok"]
    with torch.no_grad():
        torch.testing.assert_close(compiled(ids), eager(ids), rtol=1e-4, atol=1e-4)
    assert counters["frames"]["ok"] > frames  # the forward went through dynamo, not the eager path


PEAK_RSS = """
import resource, sys
from hyperlab.config.cli import compose
from hyperlab.train import train
train(compose(sys.argv[2:], sys.argv[1]))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_corpus(tmp_path):
    """A 4x larger corpus (10 MB -> 41 MB of text) trains in the same peak resident memory: shards are memory
    mapped and tokenised file by file. Loading it whole would add 60 MB as uint16 token ids, 240 MB as int64."""
    peaks = []
    for scale in (1, 4):
        corpus = write_corpus(tmp_path / f"corpus{scale}", files=50 * scale, lines=8000)
        overrides = [
            "data=stdlib",
            f"data.paths=[{corpus}]",
            "data.tokenizer=bytes",
            f"data.cache_dir={tmp_path / 'cache'}",
            "data.batches_per_epoch=5",
            "data.eval_windows=16",
            "model=gpt",
            "model.width=32",
            "model.depth=1",
            "model.heads=2",
            "trainer.max_epochs=1",
            "optimized_metric=val/bpb",
        ]
        run = subprocess.run(
            [sys.executable, "-c", PEAK_RSS, str(tmp_path / f"run{scale}"), *overrides],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert run.returncode == 0, run.stderr[-2000:]
        metrics = json.loads((tmp_path / f"run{scale}" / "metrics.json").read_text())
        peaks.append((int(run.stdout.split()[-1]), metrics["data/bytes"]["train"]))
    (small, small_bytes), (large, large_bytes) = peaks
    assert large_bytes > 3.5 * small_bytes > 3.5 * 9e6
    assert large - small < 30, peaks  # MB


BPE = {"tokenizer": "bpe", "vocab_size": 300}
SHARD_CHANGES = [({}, BPE), (BPE, {**BPE, "vocab_size": 320}), ({}, {"val_fraction": 0.2}), ({}, {"split_seed": 1})]


@pytest.mark.parametrize(("before", "change"), SHARD_CHANGES, ids=[str(c) for _, c in SHARD_CHANGES])
def test_a_tokenizer_or_split_setting_makes_its_own_shards(corpus, tmp_path, before, change):
    """Each setting that changes the shards' contents is in the key: a run with it never opens the old shards."""
    first = datamodule(corpus, tmp_path, **before)
    second = datamodule(corpus, tmp_path, **change)
    fresh = datamodule(corpus, tmp_path / "fresh", **change)
    assert first.folder != second.folder and second.folder.name == fresh.folder.name
    for split in ("train", "val"):
        assert np.array_equal(np.asarray(second.shards[split]), np.asarray(fresh.shards[split]))
