"""Streaming from disk for datasets too large to decode into memory (ImageNet at 224 px).

The in-memory path (:class:`~cpnas.data.TensorLoader` over decoded uint8 tensors) stays the
one for CIFAR-10 and small sets. A dataset streams when the registry says so for the run's
scale (:attr:`cpnas.data.registry.DatasetSpec.loaders`: ImageNet at ``paper``) or when
``$CPNAS_LOADER=stream`` (``cpnas train|search --loader stream``) forces it:

* :func:`folder_images` lists a split with torchvision's ``ImageFolder`` (classes: those of
  ``train/``) into a :class:`FolderImages`, an :class:`~cpnas.data.ImageTensors` whose
  ``images`` is a ``meta`` tensor (shapes only: the pixels stay on disk);
* ``TensorLoader(folder_images, …)`` then gives a :class:`StreamLoader`, so search and
  training build their loaders as they always do: a ``DataLoader`` with worker processes
  that decode and augment each image as DARTS' ``train_imagenet.py`` does —
  RandomResizedCrop(size), horizontal flip, ColorJitter(brightness=0.4, contrast=0.4,
  saturation=0.4, hue=0.2); evaluation: Resize(size·256/224) + CenterCrop(size) — then
  normalises to [−1, +1] (§3.1) on the device.

Determinism: the order of an epoch is ``DistributedSampler``'s permutation of (seed, epoch)
(one process is its ``num_replicas=1`` case); image i of epoch e is augmented under the torch
seed (seed, e, i), in whichever worker or rank reads it. So an epoch's batches are a function
of (seed, epoch) only (resume is exact) and N data-parallel ranks together read exactly the
images, augmented exactly as, one process reading with the global batch.
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from typing import Any, Iterator, Sequence

import torch

from cpnas.data.images import ImageTensors
from cpnas.data.splits import _mix_seed
from cpnas.errors import CpnasError

LOADER_ENV = "CPNAS_LOADER"
LOADERS: tuple[str, ...] = ("memory", "stream")
DARTS_JITTER = {"brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.2}
"""DARTS ``train_imagenet.py``: ``ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.2)``."""
RESIZE_RATIO = 256 / 224
"""Evaluation: the shorter side resized to 256/224 of the crop, then a centre crop (DARTS, torchvision)."""


def forced_loader() -> str | None:
    """The loader ``$CPNAS_LOADER`` forces (``memory`` or ``stream``), or None."""
    value = os.environ.get(LOADER_ENV, "").strip().lower()
    if value in ("", "auto"):
        return None
    if value not in LOADERS:
        raise CpnasError(f"{LOADER_ENV}={value!r}: choose one of auto, {', '.join(LOADERS)}")
    return value


@dataclasses.dataclass(frozen=True, eq=False)
class FolderImages(ImageTensors):
    """A split read from disk: ``files`` (one path per sample), ``labels``, ``classes``; ``images`` is meta.

    ``images`` has the shape the samples will have (``N×3×size×size``) on the ``meta``
    device, so code that reads shapes works unchanged; ``num_workers`` are the loader's
    decoding processes.
    """

    files: tuple[str, ...] = ()
    num_workers: int = 0

    def select(self, idx: torch.Tensor | Sequence[int]) -> "FolderImages":
        idx = torch.as_tensor(idx, dtype=torch.int64)
        files = tuple(self.files[i] for i in idx.tolist())
        return dataclasses.replace(self, images=_meta(len(files), self.images.shape[-1]),
                                   labels=self.labels[idx], files=files)


def _meta(n: int, size: int) -> torch.Tensor:
    return torch.empty((n, 3, size, size), dtype=torch.uint8, device="meta")


def default_workers() -> int:
    """Decoding processes per rank when ``data.num_workers`` is 0: the node's cores shared by its ranks, ≤ 8."""
    ranks_here = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, min(8, (os.cpu_count() or 1) // max(ranks_here, 1) - 1))


def folder_images(root: str | os.PathLike, split_dir: str | os.PathLike, classes: Sequence[str], *,
                  image_size: int, description: str, name: str, split: str,
                  num_workers: int = 0) -> FolderImages:
    """List ``split_dir`` with torchvision's ``ImageFolder``, labels indexing ``classes`` (those of ``train/``)."""
    from torchvision.datasets import ImageFolder

    class _TrainClasses(ImageFolder):
        def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
            return list(classes), {c: i for i, c in enumerate(classes)}

    folder = _TrainClasses(str(split_dir), allow_empty=True)
    if not folder.samples:
        raise CpnasError(f"{str(split_dir)!r} holds no image files; expected {split_dir}/<class>/*.JPEG")
    files = tuple(path for path, _ in folder.samples)
    labels = torch.tensor([label for _, label in folder.samples], dtype=torch.int64)
    return FolderImages(images=_meta(len(files), image_size), labels=labels, classes=list(classes),
                        description=description, name=name, split=split, files=files,
                        num_workers=num_workers or default_workers())


# --------------------------------------------------------------------------- per-image work (in the workers)


def train_transform(size: int):
    """DARTS' ImageNet training augmentation on a uint8 tensor (torchvision.transforms.v2)."""
    from torchvision.transforms import v2

    return v2.Compose([v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip(),
                       v2.ColorJitter(**DARTS_JITTER)])


def test_transform(size: int):
    """Resize the shorter side to ``size·256/224``, then a centre ``size×size`` crop."""
    from torchvision.transforms import v2

    return v2.Compose([v2.Resize(int(round(size * RESIZE_RATIO)), antialias=True), v2.CenterCrop(size)])


class _Decoded(torch.utils.data.Dataset):
    """Image ``i``: decoded (libjpeg-turbo, PIL otherwise) and transformed under the seed (seed, epoch, i)."""

    def __init__(self, files: Sequence[str], labels: torch.Tensor, transform: Any, seed: int, epoch: int) -> None:
        self.files, self.labels, self.transform = files, labels, transform
        self.seed, self.epoch = seed, epoch

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from pathlib import Path

        from cpnas.data.decode import _decode_bytes

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)  # torchvision 0.29's decoders
            img = _decode_bytes(Path(self.files[i]).read_bytes(), self.files[i])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_mix_seed(self.seed, self.epoch, i))
            img = self.transform(img)
        return img.contiguous(), int(self.labels[i])


# --------------------------------------------------------------------------- the loader


class StreamLoader:
    """Batches of a :class:`FolderImages` read by ``DataLoader`` workers; the interface of ``TensorLoader``.

    ``augment`` selects DARTS' training augmentation (else the evaluation resize + crop);
    ``pad`` is ignored (RandomResizedCrop replaces pad-and-crop); ``cutout`` > 0 zeroes one
    square per image after normalisation, drawn from (seed, epoch, shard, batch).
    ``shard``/``num_shards`` split every epoch between data-parallel ranks:
    ``DistributedSampler`` (``drop_last``: every rank the same number of batches) when
    ``even``, else positions ``shard, shard + N, …`` of the order (evaluation: all once).
    """

    def __init__(self, data: FolderImages, batch_size: int, *, shuffle: bool = False, drop_last: bool = False,
                 augment: bool = False, pad: int | None = None, cutout: int = 0, seed: int = 0, epoch: int = 0,
                 channels_last: bool = True, device: str | torch.device = "cpu", shard: int = 0,
                 num_shards: int = 1, even: bool = True) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise CpnasError(f"batch size must be a positive integer, got {batch_size!r}")
        if not 0 <= shard < num_shards:
            raise ValueError(f"shard {shard} is not in [0, {num_shards})")
        self.data = data
        self.images, self.labels = data.images, data.labels
        self.batch_size, self.shuffle, self.drop_last, self.augment = batch_size, shuffle, drop_last, augment
        self.cutout, self.seed, self.epoch = int(cutout), int(seed), int(epoch)
        self.channels_last, self.device = channels_last, torch.device(device)
        self.shard, self.num_shards, self.even = shard, num_shards, bool(even)
        size = int(data.images.shape[-1])
        self.transform = train_transform(size) if augment else test_transform(size)

    @property
    def global_batch_size(self) -> int:
        return self.batch_size * self.num_shards

    @property
    def num_samples(self) -> int:
        n = len(self.data)
        stop = (n // self.num_shards) * self.num_shards if self.even else n
        return len(range(self.shard, stop, self.num_shards))

    def __len__(self) -> int:
        n = self.num_samples
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def sharded(self, shard: int, num_shards: int, *, even: bool = True) -> "StreamLoader":
        from cpnas.distributed import per_rank_batch

        if self.num_shards != 1:
            raise ValueError("this loader is already a shard")
        batch = per_rank_batch(self.batch_size) if self.batch_size % num_shards else self.batch_size // num_shards
        return StreamLoader(self.data, batch, shuffle=self.shuffle, drop_last=self.drop_last, augment=self.augment,
                            cutout=self.cutout, seed=self.seed, epoch=self.epoch, channels_last=self.channels_last,
                            device=self.device, shard=shard, num_shards=num_shards, even=even)

    def sampler(self) -> Any:
        """This shard's indices of the epoch: DistributedSampler (training) or an interleaved slice (evaluation)."""
        from torch.utils.data import DistributedSampler

        dataset = range(len(self.data))
        if self.even:
            sampler = DistributedSampler(dataset, num_replicas=self.num_shards, rank=self.shard,  # type: ignore[arg-type]
                                         shuffle=self.shuffle, seed=self.seed, drop_last=True)
            sampler.set_epoch(self.epoch)
            return sampler
        return list(range(self.shard, len(self.data), self.num_shards))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        from torch.utils.data import DataLoader

        from cpnas.data.transforms import cutout_, normalize

        dataset = _Decoded(self.data.files, self.labels, self.transform, self.seed, self.epoch)
        workers = self.data.num_workers
        loader = DataLoader(dataset, batch_size=self.batch_size, sampler=self.sampler(), drop_last=self.drop_last,
                            num_workers=workers, pin_memory=self.device.type == "cuda",
                            prefetch_factor=4 if workers else None)
        g = torch.Generator().manual_seed(_mix_seed(self.seed, self.epoch, self.shard, 2))
        for x, y in loader:
            x = x.to(self.device, non_blocking=True)
            x = x.contiguous(memory_format=torch.channels_last) if self.channels_last else x.contiguous()
            x = normalize(x)
            if self.cutout > 0:
                b, _, h, w = x.shape
                centers = torch.stack([torch.randint(0, h, (b,), generator=g),
                                       torch.randint(0, w, (b,), generator=g)], dim=1)
                cutout_(x, centers, self.cutout)
            yield x, y.to(self.device, non_blocking=True)
