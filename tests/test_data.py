"""Tests of cpnas.data: synthetic data, splits, the tensor loader, folder loading and errors."""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

import pytest
import torch

from cpnas import data as cpdata
from cpnas.errors import CpnasError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CIFAR_JPEG = SHARED / "cifar10-jpeg"
IMAGENETTE = SHARED / "imagenette-224"


@pytest.fixture(autouse=True)
def _no_env(monkeypatch, tmp_path):
    """Tests never see a developer's data or cache settings."""
    for var in (*cpdata.ENV_VARS.values(), cpdata.CACHE_ENV):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(cpdata.CACHE_ENV, str(tmp_path / "default-cache"))


# --------------------------------------------------------------------------- synthetic


def test_synthetic_is_deterministic_and_shaped():
    a = cpdata.synthetic_images(64, seed=3)
    b = cpdata.synthetic_images(64, seed=3)
    c = cpdata.synthetic_images(64, seed=4)
    assert a.images.shape == (64, 3, 32, 32) and a.images.dtype == torch.uint8
    assert a.labels.dtype == torch.int64 and a.num_classes == 10 and len(a) == 64
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)
    assert torch.bincount(a.labels).tolist() == [7, 7, 7, 7, 6, 6, 6, 6, 6, 6]
    assert cpdata.synthetic_images(8, seed=0, image_size=20).images.shape == (8, 3, 20, 20)
    assert cpdata.load_images("synthetic", "test", n=16, seed=3).images.shape == (16, 3, 32, 32)


def test_synthetic_is_learnable_across_splits():
    """A nearest-class-mean classifier fit on train is far above chance on test."""
    train = cpdata.synthetic_images(500, seed=0, split="train")
    test = cpdata.synthetic_images(200, seed=0, split="test")
    assert not torch.equal(train.images[:200], test.images)
    x_tr, x_te = train.images.flatten(1).float(), test.images.flatten(1).float()
    means = torch.stack([x_tr[train.labels == k].mean(0) for k in range(10)])
    accuracy = (torch.cdist(x_te, means).argmin(1) == test.labels).float().mean().item()
    assert accuracy > 0.5


def test_load_dataset_follows_the_config():
    from cpnas.config import get_config

    cfg = get_config("smoke")
    train = cpdata.load_dataset(cfg, "synthetic", "train", seed=2)
    test = cpdata.load_dataset(cfg, "synthetic", "test", seed=2)
    assert len(train) == cfg.data.synthetic_train and len(test) == cfg.data.synthetic_test
    assert train.image_size == (cfg.cifar.image_size, cfg.cifar.image_size)
    assert torch.equal(train.images, cpdata.load_dataset(cfg, "synthetic", "train", seed=2).images)


# --------------------------------------------------------------------------- splits


def test_search_split_is_disjoint_seeded_and_sized():
    idx_fit, idx_score = cpdata.search_split(1000, 0.5, 0.05, seed=0)
    assert len(idx_fit) == 500 and len(idx_score) == 50
    assert not set(idx_fit.tolist()) & set(idx_score.tolist())
    assert idx_fit.max() < 1000 and idx_fit.min() >= 0
    again = cpdata.search_split(1000, 0.5, 0.05, seed=0)
    assert torch.equal(again[0], idx_fit) and torch.equal(again[1], idx_score)
    assert not torch.equal(cpdata.search_split(1000, 0.5, 0.05, seed=1)[0], idx_fit)


def test_search_split_stratified_keeps_classes_balanced():
    labels = torch.arange(1000) % 10
    idx_fit, idx_score = cpdata.search_split(1000, 0.5, 0.05, seed=0, labels=labels)
    assert not set(idx_fit.tolist()) & set(idx_score.tolist())
    assert torch.bincount(labels[idx_fit], minlength=10).tolist() == [50] * 10
    assert torch.bincount(labels[idx_score], minlength=10).tolist() == [5] * 10


@pytest.mark.parametrize("fractions", [(0.6, 0.5), (0.0, 0.1), (0.5, 1e-5), (1.5, 0.1)])
def test_search_split_rejects_bad_fractions(fractions):
    with pytest.raises(CpnasError, match="fraction"):
        cpdata.search_split(1000, *fractions, seed=0)


def test_fraction_indices_balance_and_edges():
    labels = torch.cat([torch.full((600,), 0), torch.full((300,), 1), torch.full((100,), 2)])
    labels = labels[torch.randperm(1000, generator=torch.Generator().manual_seed(0))]
    idx = cpdata.fraction_indices(1000, 0.1, seed=5, labels=labels)
    assert len(idx) == 100 and len(set(idx.tolist())) == 100
    assert torch.equal(idx, idx.sort().values)
    assert torch.bincount(labels[idx]).tolist() == [60, 30, 10]
    assert torch.equal(cpdata.fraction_indices(1000, 0.1, seed=5, labels=labels), idx)
    assert torch.equal(cpdata.fraction_indices(50, 1.0, seed=0), torch.arange(50))
    assert len(cpdata.fraction_indices(50, 0.3, seed=0)) == 15
    with pytest.raises(CpnasError):
        cpdata.fraction_indices(50, 0.001, seed=0)


def test_subset_copies_selected_samples():
    d = cpdata.synthetic_images(20, seed=0)
    s = cpdata.subset(d, torch.tensor([3, 7]))
    assert torch.equal(s.images, d.images[[3, 7]]) and torch.equal(s.labels, d.labels[[3, 7]])
    assert s.classes == d.classes and s.description == d.description


# --------------------------------------------------------------------------- loader


def _batches(loader):
    return [(x.clone(), y.clone()) for x, y in loader]


def test_loader_shapes_range_and_length():
    d = cpdata.synthetic_images(100, seed=0)
    loader = cpdata.TensorLoader(d, 32, shuffle=True, augment=True, cutout=8)
    batches = _batches(loader)
    assert len(loader) == 4 == len(batches)
    assert [len(y) for _, y in batches] == [32, 32, 32, 4]
    for x, y in batches:
        assert x.dtype == torch.float32 and x.shape[1:] == (3, 32, 32) and y.dtype == torch.int64
        assert x.min() >= -1.0 and x.max() <= 1.0
        assert x.is_contiguous(memory_format=torch.channels_last)
    dropped = cpdata.TensorLoader(d, 32, drop_last=True)
    assert len(dropped) == 3 and [len(y) for _, y in dropped] == [32, 32, 32]
    # every sample exactly once per epoch
    assert sorted(torch.cat([y for _, y in batches]).tolist()) == sorted(d.labels.tolist())


def test_loader_normalizes_exactly_without_augmentation():
    d = cpdata.synthetic_images(10, seed=0)
    (x, y), = cpdata.TensorLoader(d, 10, channels_last=False)
    assert x.is_contiguous()
    assert torch.equal(x, d.images.float() / 127.5 - 1) and torch.equal(y, d.labels)
    extremes = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1).expand(2, 3, 4, 4).contiguous()
    (x, _), = cpdata.TensorLoader((extremes, torch.tensor([0, 1])), 2)
    assert x[0].eq(-1).all() and x[1].eq(1).all()


def test_loader_is_deterministic_per_seed_and_epoch():
    d = cpdata.synthetic_images(96, seed=0)
    kwargs = dict(shuffle=True, augment=True, cutout=8, seed=7)
    run = cpdata.TensorLoader(d, 32, **kwargs)
    epochs = []
    for epoch in range(3):
        run.set_epoch(epoch)
        epochs.append(_batches(run))
    # iterating the same epoch again gives the same batches
    assert all(torch.equal(a[0], b[0]) for a, b in zip(epochs[2], _batches(run)))
    # a fresh loader resumed at epoch 2 reproduces the uninterrupted run
    resumed = cpdata.TensorLoader(d, 32, epoch=2, **kwargs)
    for (xa, ya), (xb, yb) in zip(epochs[2], _batches(resumed)):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    # epochs and seeds differ
    assert not torch.equal(epochs[0][0][0], epochs[1][0][0])
    other = cpdata.TensorLoader(d, 32, **{**kwargs, "seed": 8})
    assert not torch.equal(_batches(other)[0][0], epochs[0][0][0])
    # the memory format does not change the values
    flat = cpdata.TensorLoader(d, 32, channels_last=False, epoch=2, **kwargs)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(epochs[2], _batches(flat)))


def test_loader_flip_only_preserves_pixels():
    """With pad=0 the crop is the identity: each image is itself or its mirror."""
    d = cpdata.synthetic_images(64, seed=1)
    (x, y), = cpdata.TensorLoader(d, 64, augment=True, pad=0, channels_last=False)
    ref = d.images.float() / 127.5 - 1
    same = (x == ref).flatten(1).all(1)
    mirrored = (x == ref.flip(-1)).flatten(1).all(1)
    assert bool((same | mirrored).all())
    assert 0 < int(mirrored.sum()) < 64


def test_crop_flip_matches_per_image_oracle():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (16, 3, 8, 6), dtype=torch.uint8, generator=g)
    pad = 2
    offsets = torch.randint(0, 2 * pad + 1, (16, 2), generator=g)
    flip = torch.rand(16, generator=g) < 0.5
    out = cpdata.crop_flip(images, offsets, flip, pad)
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    for i in range(16):
        r, c = offsets[i].tolist()
        expected = padded[i, :, r:r + 8, c:c + 6]
        if flip[i]:
            expected = torch.flip(expected, dims=[-1])
        assert torch.equal(out[i], expected)


def test_cutout_zeroes_one_clipped_square():
    x = torch.ones(3, 3, 32, 32)
    cpdata.cutout_(x, torch.tensor([[16, 10], [0, 0], [31, 20]]), 8)
    expected = torch.ones(3, 3, 32, 32)
    expected[0, :, 12:20, 6:14] = 0  # far from the border: an exact 8×8 square
    expected[1, :, 0:4, 0:4] = 0  # clipped at the corner
    expected[2, :, 27:32, 16:24] = 0  # clipped at the bottom
    assert torch.equal(x, expected)


def test_loader_cutout_patch_is_mid_grey_and_sized():
    images = torch.full((64, 3, 32, 32), 255, dtype=torch.uint8)
    loader = cpdata.TensorLoader((images, torch.zeros(64, dtype=torch.int64)), 64, cutout=16, seed=0)
    (x, _), = loader
    zeros = (x == 0).all(1).flatten(1).sum(1)  # per image, pixels zeroed in every channel
    assert ((x == 0) | (x == 1)).all()
    assert zeros.min() >= 8 * 8 and zeros.max() <= 16 * 16 and (zeros == 256).any()


def test_loader_shards_partition_an_epoch():
    d = cpdata.synthetic_images(50, seed=0)
    d = cpdata.ImageTensors(images=d.images, labels=torch.arange(50), classes=d.classes,
                       description=d.description, name=d.name)
    seen = []
    for shard in range(2):
        loader = cpdata.TensorLoader(d, 8, shuffle=True, seed=1, shard=shard, num_shards=2)
        assert len(loader) == 4
        seen.append(torch.cat([y for _, y in loader]))
    assert len(seen[0]) == len(seen[1]) == 25 and not set(seen[0].tolist()) & set(seen[1].tolist())


@pytest.mark.parametrize("kwargs", [dict(batch_size=0), dict(batch_size=4, cutout=-1)])
def test_loader_rejects_bad_arguments(kwargs):
    with pytest.raises(CpnasError):
        cpdata.TensorLoader(cpdata.synthetic_images(8), **kwargs)


# --------------------------------------------------------------------------- folders and errors


def _write_folder(root: Path, splits=("train", "test"), classes=("a", "b"), per_class=3, size=(10, 12)):
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    for split in splits:
        for k, cls in enumerate(classes):
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                arr = torch.randint(0, 256, (size[1], size[0], 3), dtype=torch.uint8, generator=g).numpy()
                img = Image.fromarray(arr)
                if i == 0:
                    img.convert("L").save(root / split / cls / f"{i}.jpg")  # grayscale → RGB on load
                elif i == 1:
                    img.save(root / split / cls / f"{i}.png")
                else:
                    img.save(root / split / cls / f"{i}.bmp")  # not read by torchvision: PIL fallback
    return root


def test_missing_path_names_the_path_and_the_env_var(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere"
    with pytest.raises(CpnasError) as err:
        cpdata.resolve_root("cifar10", missing)
    assert str(missing) in str(err.value) and "CPNAS_CIFAR10" in str(err.value)
    assert "download" in str(err.value)
    monkeypatch.setenv("CPNAS_CIFAR10", str(missing))
    with pytest.raises(CpnasError, match="environment variable CPNAS_CIFAR10") as err:
        cpdata.load_images("cifar10", "test")
    assert str(missing) in str(err.value)


def test_folder_without_train_is_rejected(tmp_path):
    (tmp_path / "test" / "a").mkdir(parents=True)
    with pytest.raises(CpnasError, match="no train/"):
        cpdata.resolve_root("cifar10", tmp_path)
    with pytest.raises(CpnasError, match="split folder"):
        cpdata.resolve_root("imagenet", tmp_path / "test")


def test_imagenet_needs_a_path_and_accepts_test_for_val(tmp_path):
    with pytest.raises(CpnasError, match="CPNAS_IMAGENET"):
        cpdata.resolve_root("imagenet")
    assert cpdata.resolve_root("cifar10") is None  # torchvision download
    _write_folder(tmp_path, splits=("train", "test"))
    assert cpdata.resolve_root("imagenet", tmp_path) == tmp_path.resolve()


def test_cifar10_without_path_uses_torchvision_in_the_cache(tmp_path, monkeypatch):
    import numpy as np
    import torchvision.datasets

    calls = []

    class FakeCIFAR10:
        classes = list(cpdata.CIFAR10_CLASSES)

        def __init__(self, root, train, download):
            calls.append((root, train, download))
            self.data = np.arange(4 * 32 * 32 * 3, dtype=np.uint8).reshape(4, 32, 32, 3)
            self.targets = [0, 1, 2, 9]

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    data = cpdata.load_images("cifar10", "train", cache_dir=tmp_path)
    assert calls == [(str(tmp_path / "torchvision"), True, True)]
    assert data.description == "CIFAR-10" and data.classes == list(cpdata.CIFAR10_CLASSES)
    assert torch.equal(data.images, torch.from_numpy(FakeCIFAR10(tmp_path, True, True).data).permute(0, 3, 1, 2))
    assert data.labels.tolist() == [0, 1, 2, 9]


def test_cifar10_download_failure_explains_the_remedy(tmp_path, monkeypatch):
    import urllib.error

    import torchvision.datasets

    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(CpnasError, match="could not download CIFAR-10") as err:
        cpdata.load_images("cifar10", "test", cache_dir=tmp_path)
    assert "CPNAS_CIFAR10" in str(err.value) and "--data" in str(err.value)


def test_unknown_dataset_and_split():
    with pytest.raises(CpnasError, match="cifar10, imagenet, synthetic"):
        cpdata.load_images("mnist", "train")
    with pytest.raises(CpnasError, match="train, test"):
        cpdata.load_images("synthetic", "val")


def test_image_folder_loads_converts_resizes_and_caches(tmp_path, caplog, monkeypatch):
    root = _write_folder(tmp_path / "ds", splits=("train", "val"))
    cache = tmp_path / "cache"
    data = cpdata.load_images("imagenet", "test", root, image_size=8, cache_dir=cache, progress=False)
    assert data.images.shape == (6, 3, 8, 8) and data.classes == ["a", "b"]
    assert data.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert data.description == f"ImageNet-layout folder {root.resolve()}"
    gray = data.images[0]
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])
    (cache_file,) = cache.glob("imagenet-test-8px-*.pt")

    # a second load reads the cache and decodes nothing
    monkeypatch.setattr(cpdata.folder, "_decode_files", lambda *a, **k: pytest.fail("decoded despite the cache"))
    again = cpdata.load_images("imagenet", "test", root, image_size=8, cache_dir=cache)
    assert torch.equal(again.images, data.images) and torch.equal(again.labels, data.labels)
    monkeypatch.undo()

    # a corrupt cache is ignored with a warning and rebuilt
    cache_file.write_bytes(b"not a tensor file")
    with caplog.at_level(logging.WARNING, logger="cpnas.data"):
        rebuilt = cpdata.load_images("imagenet", "test", root, image_size=8, cache_dir=cache)
    assert torch.equal(rebuilt.images, data.images) and "unreadable cache" in caplog.text
    assert torch.load(cache_file, weights_only=True)["images"].shape == (6, 3, 8, 8)

    # another copy of the folder, another image size and a limit each get their own entry
    other = shutil.copytree(root, tmp_path / "copy")
    cpdata.load_images("imagenet", "test", other, image_size=8, cache_dir=cache)
    cpdata.load_images("imagenet", "test", root, image_size=6, cache_dir=cache)
    cpdata.load_images("imagenet", "test", root, image_size=8, limit_per_class=2, cache_dir=cache)
    entries = sorted(p.name for p in cache.glob("imagenet-test-*.pt"))
    assert len(entries) == 4 and cache_file.name in entries

    # an edited folder gets a new cache entry, which replaces the entry of its earlier state only
    (root / "val" / "a" / "2.bmp").unlink()
    assert len(cpdata.load_images("imagenet", "test", root, image_size=8, cache_dir=cache)) == 5
    after = sorted(p.name for p in cache.glob("imagenet-test-*.pt"))
    assert len(after) == 4 and cache_file.name not in after
    assert set(entries) - set(after) == {cache_file.name}
    assert not list(cache.glob(".*.tmp"))

    # re-copied files (new modification times) likewise leave one entry for the folder
    os.utime(root / "val" / "a" / "1.png", ns=(0, 0))
    assert len(cpdata.load_images("imagenet", "test", root, image_size=8, cache_dir=cache)) == 5
    assert len(list(cache.glob("imagenet-test-*.pt"))) == 4


def test_image_folder_of_mixed_sizes_needs_an_image_size(tmp_path):
    root = _write_folder(tmp_path / "ds")
    _write_folder(tmp_path / "ds", splits=("test",), classes=("b",), per_class=4, size=(14, 14))
    with pytest.raises(CpnasError, match="image size"):
        cpdata.load_images("cifar10", "test", root, cache_dir=tmp_path / "c", progress=False)


def test_corrupt_image_file_is_named(tmp_path):
    root = _write_folder(tmp_path / "ds")
    bad = root / "train" / "a" / "9.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(CpnasError, match="9.jpg"):
        cpdata.load_images("cifar10", "train", root, cache_dir=tmp_path / "c", progress=False)


@pytest.mark.skipif(not CIFAR_JPEG.is_dir(), reason="no development copy of CIFAR-10")
def test_real_cifar10_jpeg_test_split(tmp_path):
    data = cpdata.load_images("cifar10", "test", CIFAR_JPEG, cache_dir=tmp_path, progress=False)
    assert data.images.shape == (10000, 3, 32, 32) and data.images.dtype == torch.uint8
    assert data.images.is_contiguous(memory_format=torch.channels_last)
    assert data.classes[0] == "airplane" and data.classes[-1] == "truck"
    assert tuple(data.classes) == cpdata.CIFAR10_CLASSES
    assert torch.bincount(data.labels).tolist() == [1000] * 10
    assert data.description == "CIFAR-10 (JPEG copy)"
    start = time.perf_counter()
    again = cpdata.load_images("cifar10", "test", CIFAR_JPEG, cache_dir=tmp_path)
    assert time.perf_counter() - start < 2.0
    assert torch.equal(again.images[::997], data.images[::997])


@pytest.mark.skipif(not IMAGENETTE.is_dir(), reason="no development copy of Imagenette")
def test_real_imagenette_val_with_grayscale(tmp_path):
    from PIL import Image

    data = cpdata.load_images("imagenet", "test", IMAGENETTE, image_size=64, cache_dir=tmp_path,
                         limit_per_class=10, progress=False)
    assert data.images.shape == (100, 3, 64, 64)
    assert data.description == "Imagenette (10 ImageNet classes)" and data.num_classes == 10
    files = [sorted(os.listdir(IMAGENETTE / "val" / c))[:10] for c in data.classes]
    modes = [Image.open(IMAGENETTE / "val" / c / f).mode for c, fs in zip(data.classes, files) for f in fs]
    gray = [i for i, m in enumerate(modes) if m == "L"]
    assert gray, "the first 10 validation files per class include grayscale images"
    for i in gray:
        assert torch.equal(data.images[i, 0], data.images[i, 1])
        assert torch.equal(data.images[i, 1], data.images[i, 2])
