"""Seeded, learnable synthetic images for tests and smoke runs: the ``synthetic`` source of
:data:`cpnas.data.sources.SOURCES`."""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from cpnas.data.images import ImageTensors
from cpnas.data.registry import SPLITS, DatasetSpec
from cpnas.data.splits import _mix_seed
from cpnas.errors import CpnasError


def load_synthetic(spec: DatasetSpec, split: str, path: None, image_size: int | None, cache: None, *,
                   n: int, seed: int, **_: object) -> ImageTensors:
    """The ``synthetic`` source: ``n`` images of split ``split`` drawn from ``seed``."""
    size = image_size or spec.native_size
    data = synthetic_images(n, seed=seed, split=split, **({"image_size": size} if size else {}),
                            **({"num_classes": spec.num_classes} if spec.num_classes else {}))
    return dataclasses.replace(data, name=spec.name, description=f"{spec.label} (seed {seed})")


def synthetic_images(n: int, *, seed: int = 0, image_size: int = 32, num_classes: int = 10,
                     split: str = "train") -> ImageTensors:
    """``n`` seeded, learnable images: a class template plus noise (for tests and smoke runs).

    Every class has a fixed random low-frequency pattern (4×4 values upsampled to
    the image size) drawn from ``seed`` alone, so ``train`` and ``test`` share the
    templates; each image adds Gaussian noise and a random brightness shift drawn
    from ``(seed, split)``. Labels are balanced. A nearest-class-mean classifier
    (and so a tiny CNN after a few steps) beats chance easily. Same arguments →
    identical tensors.
    """
    if split not in SPLITS:
        raise CpnasError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if n < 1 or num_classes < 1 or image_size < 1:
        raise CpnasError(f"synthetic data needs n, num_classes and image_size ≥ 1, got "
                         f"n={n}, num_classes={num_classes}, image_size={image_size}")
    g = torch.Generator().manual_seed(_mix_seed(seed, 0x5EED))
    templates = torch.rand(num_classes, 3, 4, 4, generator=g) * 2 - 1
    templates = F.interpolate(templates, size=(image_size, image_size), mode="bilinear", align_corners=False)
    g = torch.Generator().manual_seed(_mix_seed(seed, SPLITS.index(split)))
    labels = (torch.arange(n) % num_classes)[torch.randperm(n, generator=g)]
    noise = torch.randn(n, 3, image_size, image_size, generator=g)
    shift = torch.randn(n, 1, 1, 1, generator=g)
    x = 127.5 + 70.0 * templates[labels] + 35.0 * noise + 15.0 * shift
    images = x.round_().clamp_(0, 255).to(torch.uint8).contiguous(memory_format=torch.channels_last)
    return ImageTensors(images=images, labels=labels.to(torch.int64),
                        classes=[f"class{i}" for i in range(num_classes)],
                        description=f"synthetic (seed {seed})", name="synthetic", split=split)
