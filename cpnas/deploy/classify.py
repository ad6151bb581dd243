"""Classify a folder of images with a packed model file (``cpnas deploy --load FILE --images FOLDER``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from cpnas.errors import CpnasError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".ppm")
BATCH = 32
"""Images per forward."""


def image_files(folder: str | os.PathLike) -> list[Path]:
    """The image files under ``folder`` (recursively), sorted; none is one clear error."""
    root = Path(folder)
    if not root.is_dir():
        raise CpnasError(f"{root}: not a folder; give a folder of images (.jpg, .png, …) to --images")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise CpnasError(f"{root}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder or below")
    return files


def class_names(dataset: str, num_classes: int) -> tuple[str, ...] | None:
    from cpnas.data import CIFAR10_CLASSES

    return CIFAR10_CLASSES if dataset == "cifar10" and num_classes == len(CIFAR10_CLASSES) else None


def classify(model_file: str | os.PathLike, folder: str | os.PathLike, *, image_size: int | None = None
             ) -> dict[str, Any]:
    """Predicted class of every image under ``folder`` by the packed model in ``model_file``.

    Images are resized (shorter side) and centre-cropped to the network's input size and
    normalized as in training. Returns the path the kernels took and one row per image.
    """
    from cpnas.data import normalize
    from cpnas.deploy import kernels
    from cpnas.deploy.network import load_packed
    from cpnas.deploy.pair import _read_image

    packed = load_packed(model_file)
    files = image_files(folder)
    meta = packed.meta
    size = image_size or (224 if meta.dataset == "imagenet" else 32)
    names = class_names(meta.dataset, meta.num_classes)
    rows: list[dict[str, Any]] = []
    for start in range(0, len(files), BATCH):
        chunk = files[start:start + BATCH]
        images = []
        for f in chunk:
            try:
                images.append(_read_image(f, size))
            except (OSError, ValueError) as exc:
                raise CpnasError(f"{f}: cannot read this image ({exc})") from None
        logits = packed(normalize(torch.stack(images)))
        probs = logits.softmax(dim=1)
        for f, p, z in zip(chunk, probs, logits):
            k = int(z.argmax())
            rows.append({"path": str(f), "class_index": k, "class": names[k] if names else str(k),
                         "probability": float(p[k])})
    ext = kernels.extension()
    return {"model": str(model_file), "images": len(rows), "predictions": rows,
            "path": {"xnor": ext.simd_path(), "depthwise": ext.depthwise_path()},
            "network": {"dataset": meta.dataset, "channels": meta.channels, "layers": meta.layers,
                        "num_classes": meta.num_classes, "genotype": meta.genotype}}
