"""The streaming ImageFolder loader on a tiny folder: shapes, determinism, shards, choice."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from cpnas import data
from cpnas.config import get_config
from cpnas.data.stream import FolderImages, StreamLoader
from cpnas.errors import CpnasError


def _folder(root: Path, per_class: int = 5, size: tuple[int, int] = (40, 30)) -> Path:
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    for split in ("train", "val"):
        for cls in ("n01", "n02"):
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(per_class):
                pixels = torch.randint(0, 256, (size[1], size[0], 3), generator=g, dtype=torch.uint8)
                Image.fromarray(pixels.numpy()).save(d / f"{i}.JPEG", format="JPEG")
    return root


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("CPNAS_LOADER", "stream")
    return _folder(tmp_path / "imagenet")


def _cfg(**extra):
    return get_config("smoke", {"imagenet.image_size": 24, **extra})


def test_registry_picks_the_loader_per_scale(monkeypatch):
    monkeypatch.delenv("CPNAS_LOADER", raising=False)
    spec = data.get_dataset("imagenet")
    assert spec.loader_for(get_config("paper")) == "stream"
    assert spec.loader_for(get_config("cpu")) == spec.loader_for(get_config("smoke")) == "memory"
    assert data.get_dataset("cifar10").loader_for(get_config("paper")) == "memory"
    monkeypatch.setenv("CPNAS_LOADER", "stream")
    assert spec.loader_for(get_config("cpu")) == "stream"
    monkeypatch.setenv("CPNAS_LOADER", "disk")
    with pytest.raises(CpnasError, match="CPNAS_LOADER"):
        spec.loader_for(get_config("cpu"))


def test_stream_split_shapes_and_labels(folder):
    train = data.load_dataset(_cfg(), "imagenet", "train", folder)
    assert isinstance(train, FolderImages) and len(train) == 10 and train.classes == ["n01", "n02"]
    assert train.labels.tolist() == [0] * 5 + [1] * 5 and train.images.is_meta
    loader = data.TensorLoader(data.subset(train, torch.arange(1, 9)), 4, shuffle=True, augment=True, seed=1)
    assert isinstance(loader, StreamLoader) and len(loader) == 2
    batches = list(loader)
    assert [tuple(x.shape) for x, _ in batches] == [(4, 3, 24, 24)] * 2
    x = torch.cat([b[0] for b in batches])
    assert x.dtype == torch.float32 and x.min() >= -1 and x.max() <= 1
    assert sorted(torch.cat([b[1] for b in batches]).tolist()) == [0] * 4 + [1] * 4
    test = data.load_dataset(_cfg(), "imagenet", "test", folder)  # val/ first (Table 2: validation accuracy)
    (xt, yt), = list(data.TensorLoader(test, 16))
    assert xt.shape == (10, 3, 24, 24) and yt.tolist() == [0] * 5 + [1] * 5


def test_augmentation_is_a_function_of_seed_and_epoch(folder):
    train = data.load_dataset(_cfg(), "imagenet", "train", folder)
    a = data.TensorLoader(train, 5, shuffle=True, augment=True, seed=3)
    first = [x for x, _ in a]
    assert all(torch.equal(p, q) for p, q in zip(first, [x for x, _ in a]))  # same epoch, same batches
    a.set_epoch(1)
    assert not torch.equal(first[0], next(iter(a))[0])
    workers = dataclasses.replace(train, num_workers=2)
    b = data.TensorLoader(workers, 5, shuffle=True, augment=True, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(first, [x for x, _ in b]))  # the workers do not matter


def test_shards_are_disjoint_and_interleave_to_the_one_process_batches(folder):
    train = data.load_dataset(_cfg(), "imagenet", "train", folder)
    one = data.TensorLoader(train, 4, shuffle=True, augment=True, seed=2, drop_last=True)
    shards = [one.sharded(r, 2) for r in range(2)]
    ys = [torch.cat([y for _, y in s]) for s in shards]
    idx = [list(s.sampler()) for s in shards]
    assert not set(idx[0]) & set(idx[1]) and len(idx[0]) == len(idx[1]) == 5
    for (x, y), (x0, y0), (x1, y1) in zip(one, *shards):
        assert torch.equal(x[0::2], x0) and torch.equal(x[1::2], x1)
        assert torch.equal(y[0::2], y0) and torch.equal(y[1::2], y1)
    assert len(ys[0]) == len(ys[1]) == 4  # drop_last: 2 batches of 2 per shard
    evaluation = [list(data.TensorLoader(train, 4).sharded(r, 2, even=False).sampler()) for r in range(2)]
    assert sorted(evaluation[0] + evaluation[1]) == list(range(10))


def test_a_cifar_download_cannot_stream(monkeypatch):
    monkeypatch.setenv("CPNAS_LOADER", "stream")
    monkeypatch.delenv("CPNAS_CIFAR10", raising=False)
    with pytest.raises(CpnasError, match="ImageFolder"):
        data.load_dataset(get_config("smoke"), "cifar10", "train", None)


def test_a_forced_streaming_run_has_its_own_run_key(monkeypatch):
    from cpnas.config import get_config
    from cpnas.runs import run_key
    from cpnas.genotype import DARTS_V2

    cfg = get_config("cpu")
    args = dict(dataset="imagenet", size="small", seed=0, loss="cp", precision="binary*")
    monkeypatch.delenv("CPNAS_LOADER", raising=False)
    memory = run_key(DARTS_V2, cfg, **args)
    assert "loader" not in memory  # the keys of finished in-memory runs are unchanged
    monkeypatch.setenv("CPNAS_LOADER", "stream")
    assert run_key(DARTS_V2, cfg, **args) == {**memory, "loader": "stream"}
