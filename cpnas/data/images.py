"""The one dataset type: a whole split as in-memory uint8 tensors, and subsets of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch


@dataclass(frozen=True, eq=False)
class ImageTensors:
    """A whole dataset split in memory.

    ``images`` is ``N×3×H×W`` uint8 (raw intensities; :class:`~cpnas.data.TensorLoader`
    normalises), stored channels-last by the sources of this package so that a
    batch needs no layout change; ``labels`` is ``N`` int64 indexing ``classes``. ``description``
    is the human label every table and figure shows (e.g. "CIFAR-10 (JPEG copy)").
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    description: str
    name: str
    split: str = "train"

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be an N×C×H×W uint8 tensor, got {self.images.dtype} "
                             f"of shape {tuple(self.images.shape)}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"{self.images.shape[0]} images but labels of shape {tuple(self.labels.shape)}")

    @property
    def num_classes(self) -> int:
        """The number of classes (the classifier's output size)."""
        return len(self.classes)

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` of every image."""
        return int(self.images.shape[2]), int(self.images.shape[3])

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __repr__(self) -> str:
        n, c, h, w = self.images.shape
        return (f"ImageTensors({self.description!r}, split={self.split!r}, n={n}, "
                f"shape={c}×{h}×{w}, classes={len(self.classes)})")


def subset(data: ImageTensors, idx: torch.Tensor | Sequence[int]) -> ImageTensors:
    """The samples ``idx`` of ``data`` (a copy, same memory format), same classes and description.

    A split that streams from disk (:class:`cpnas.data.stream.FolderImages`) selects its files instead.
    """
    idx = torch.as_tensor(idx, dtype=torch.int64)
    select = getattr(data, "select", None)
    if select is not None:
        return select(idx)
    return ImageTensors(images=data.images[idx], labels=data.labels[idx], classes=list(data.classes),
                        description=data.description, name=data.name, split=data.split)
