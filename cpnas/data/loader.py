"""Batching from in-memory uint8 tensors: augmentation, normalisation, cutout (§3.1).

:class:`TensorLoader` batches, augments (pad-and-crop, flip, cutout — vectorised
over the batch), normalises to [-1, +1] (paper §3.1) and moves batches to a
device. Its randomness is derived from ``(seed, epoch)`` only, so a run resumed
at epoch *e* sees exactly the batches of an uninterrupted run (DESIGN §5).
"""

from __future__ import annotations

import math
from typing import Any, Iterator

import torch

from cpnas.data.images import ImageTensors
from cpnas.data.transforms import crop_flip, cutout_, normalize  # noqa: F401  (re-exported)
from cpnas.data.splits import _mix_seed
from cpnas.errors import CpnasError


class TensorLoader:
    """Batches ``(images, labels)`` from in-memory uint8 tensors, with augmentation.

    Each batch: gather the samples, move the uint8 batch to ``device``, then (if
    ``augment``) pad-and-crop + horizontal flip (:func:`crop_flip`), normalise to
    [-1, +1] (§3.1), then (if ``cutout`` > 0) cutout (:func:`cutout_`; §3.1 uses
    cutout when training the found architectures, length 16 as in DARTS).

    ``pad`` defaults to ⌊side/8⌉: 4 for 32×32 CIFAR (the DARTS/PC-DARTS
    augmentation). For larger ImageNet-style images the same translate-and-flip
    with the padding scaled is used instead of RandomResizedCrop (a documented
    simplification: no scale or aspect-ratio jitter).

    Randomness comes from a CPU generator seeded by ``(seed, epoch)`` (shuffle)
    and ``(seed, epoch, shard)`` (augmentation) only, drawn in a fixed order
    whatever the device, so ``set_epoch(e)`` reproduces epoch *e* of an
    uninterrupted run exactly, and iterating twice over one epoch gives the
    same batches. ``num_shards``/``shard`` split every epoch's permutation
    between data-parallel ranks (:mod:`cpnas.distributed`): shard r reads positions
    r, r + N, … of the order, so batch k of every shard together is batch k of one
    process reading with batch ``N × batch_size``; the augmentation of that global
    batch is drawn whole, from the same generator, and each shard keeps its rows,
    so N shards see exactly the images one process sees. ``even`` (training) gives
    every shard ``n // N`` samples (ranks step in lockstep); ``even=False``
    (evaluation) covers every sample once, shards differing by at most one.
    """

    def __new__(cls, data: Any = None, *args: Any, **kwargs: Any) -> Any:
        """A split that streams from disk gets its streaming twin, :class:`cpnas.data.stream.StreamLoader`.

        So the search and training build their loaders one way, and the dataset registry
        alone decides whether the pixels are in memory or read by ``DataLoader`` workers.
        """
        from cpnas.data.stream import FolderImages, StreamLoader

        if cls is TensorLoader and isinstance(data, FolderImages):
            return StreamLoader(data, *args, **kwargs)
        return super().__new__(cls)

    def __init__(self, data: ImageTensors | tuple[torch.Tensor, torch.Tensor], batch_size: int, *,
                 shuffle: bool = False, drop_last: bool = False, augment: bool = False,
                 pad: int | None = None, cutout: int = 0, seed: int = 0, epoch: int = 0,
                 channels_last: bool = True, device: str | torch.device = "cpu",
                 shard: int = 0, num_shards: int = 1, even: bool = True) -> None:
        images, labels = (data.images, data.labels) if isinstance(data, ImageTensors) else data
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"images must be N×C×H×W uint8, got {images.dtype} {tuple(images.shape)}")
        if labels.shape != (images.shape[0],):
            raise ValueError(f"{images.shape[0]} images but labels of shape {tuple(labels.shape)}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise CpnasError(f"batch size must be a positive integer, got {batch_size!r}")
        if cutout < 0:
            raise CpnasError(f"cutout length must be ≥ 0 (0 = off), got {cutout!r}")
        if not 0 <= shard < num_shards:
            raise ValueError(f"shard {shard} is not in [0, {num_shards})")
        if not images.is_contiguous(memory_format=torch.channels_last):
            # one copy now instead of a layout change per batch (loaders here produce channels-last)
            images = images.contiguous(memory_format=torch.channels_last)
        self.images, self.labels = images, labels.to(torch.int64)
        self.batch_size = batch_size
        self.shuffle, self.drop_last, self.augment = shuffle, drop_last, augment
        side = min(images.shape[-2:])
        self.pad = max(1, round(side / 8)) if pad is None else int(pad)
        if self.pad < 0:
            raise CpnasError(f"padding must be ≥ 0, got {pad!r}")
        self.cutout = int(cutout)
        self.seed, self.epoch = int(seed), int(epoch)
        self.channels_last = channels_last
        self.device = torch.device(device)
        self.shard, self.num_shards, self.even = shard, num_shards, bool(even)

    @property
    def _stop(self) -> int:
        """End of the positions of an epoch's order the shards read together."""
        n = self.images.shape[0]
        return (n // self.num_shards) * self.num_shards if self.even else n

    @property
    def num_samples(self) -> int:
        """Samples this loader (this shard) yields per epoch, before ``drop_last``."""
        return len(range(self.shard, self._stop, self.num_shards))

    @property
    def global_batch_size(self) -> int:
        """The batch of all shards together (the configured batch of a data-parallel run)."""
        return self.batch_size * self.num_shards

    def sharded(self, shard: int, num_shards: int, *, even: bool = True) -> "TensorLoader":
        """This loader's part ``shard`` of ``num_shards``, with per-shard batch ``batch_size / num_shards``."""
        from cpnas.distributed import per_rank_batch

        if self.num_shards != 1:
            raise ValueError("this loader is already a shard")
        batch = self.batch_size // num_shards
        if self.batch_size % num_shards:
            batch = per_rank_batch(self.batch_size)  # the one-line error naming the remedy
        return TensorLoader((self.images, self.labels), batch, shuffle=self.shuffle, drop_last=self.drop_last,
                            augment=self.augment, pad=self.pad, cutout=self.cutout, seed=self.seed,
                            epoch=self.epoch, channels_last=self.channels_last, device=self.device,
                            shard=shard, num_shards=num_shards, even=even)

    def __len__(self) -> int:
        n = self.num_samples
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batches the next iteration yields."""
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = self.images.shape[0]
        if self.shuffle:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(_mix_seed(self.seed, self.epoch)))
        else:
            order = torch.arange(n)
        stop, shards = self._stop, self.num_shards
        if shards > 1:
            order = order[self.shard:stop:shards]
        # one generator for the whole epoch, whichever shard: the draws of global batch k are those
        # of a one-process run, and each shard keeps its rows of them
        g = torch.Generator().manual_seed(_mix_seed(self.seed, self.epoch, 0, 1))
        b, global_b = self.batch_size, self.batch_size * shards
        for k in range(len(self)):
            idx = order[k * b:(k + 1) * b]
            rows = slice(self.shard, min(global_b, stop - k * global_b), shards)
            yield (self._transform(self.images[idx], g, rows),
                   self.labels[idx].to(self.device, non_blocking=True))

    def _transform(self, batch: torch.Tensor, g: torch.Generator, rows: slice) -> torch.Tensor:
        """Augment, normalise, cutout one batch; random draws for the global batch, ``rows`` of them kept."""
        _, _, h, w = batch.shape
        n = rows.stop  # the global batch: every draw is made for all of it
        batch = batch.to(self.device, non_blocking=True)
        if self.augment:
            offsets = torch.randint(0, 2 * self.pad + 1, (n, 2), generator=g)[rows]
            flip = (torch.rand(n, generator=g) < 0.5)[rows]
            batch = crop_flip(batch, offsets, flip, self.pad)  # already channels-last
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        else:
            batch = batch.contiguous()
        x = normalize(batch)  # keeps the memory format
        if self.cutout > 0:
            centers = torch.stack([torch.randint(0, h, (n,), generator=g),
                                   torch.randint(0, w, (n,), generator=g)], dim=1)[rows]
            cutout_(x, centers, self.cutout)
        return x
