"""CIFAR-10 (Krizhevsky, 2009): torchvision's release (downloaded into the cache when no folder is given), or
an ImageFolder copy of it (:mod:`cpnas.data.folder`). The ``torchvision-cifar10`` source of
:data:`cpnas.data.sources.SOURCES`."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from cpnas.data.folder import load_image_folder, resize_center_crop
from cpnas.data.images import ImageTensors, subset
from cpnas.data.registry import DatasetSpec
from cpnas.data.splits import _first_per_class
from cpnas.errors import CpnasError

logger = logging.getLogger(__name__)


def is_torchvision_cifar(path: Path) -> bool:
    """Whether ``path`` holds torchvision's CIFAR-10 files (``cifar-10-batches-py/``) or is that folder."""
    return (path / "cifar-10-batches-py").is_dir() or (
        path.name == "cifar-10-batches-py" and (path / "batches.meta").is_file())


def load_cifar10(spec: DatasetSpec, split: str, path: Path | None, image_size: int | None, cache: Path, *,
                 limit_per_class: int | None, progress: bool | None, **_: object) -> ImageTensors:
    """CIFAR-10 from torchvision's files (downloaded when ``path`` is None), else from an ImageFolder copy."""
    if path is None or is_torchvision_cifar(path):
        data = _load_torchvision_cifar10(spec, split, path, cache, image_size)
        if limit_per_class is not None:
            data = subset(data, _first_per_class(data.labels, limit_per_class))
        return data
    return load_image_folder(spec, path, split, image_size, cache, limit_per_class, progress)


def _load_torchvision_cifar10(spec: DatasetSpec, split: str, path: Path | None, cache: Path,
                              image_size: int | None) -> ImageTensors:
    from torchvision.datasets import CIFAR10

    download = path is None
    if path is None:
        target = cache / "torchvision"
    else:
        target = path.parent if path.name == "cifar-10-batches-py" else path
    try:
        if download:
            logger.info("CIFAR-10: using or downloading the official release in %s", target)
        ds = CIFAR10(root=str(target), train=split == "train", download=download)
    except Exception as exc:  # network, archive and integrity failures arrive as many unrelated types
        if download:
            raise CpnasError(
                f"could not download CIFAR-10 into {str(target)!r} ({type(exc).__name__}: {exc}). "
                f"Without network access, pass --data PATH or set CPNAS_CIFAR10 to a local copy in the "
                f"ImageFolder layout (PATH/train/<class>/*.jpg, PATH/test/<class>/*.jpg) or to a folder "
                f"holding cifar-10-batches-py/.") from exc
        raise CpnasError(
            f"the torchvision CIFAR-10 files in {str(target)!r} are missing or corrupt ({exc}). "
            f"Delete that folder and let torchvision download it again, or point --data / CPNAS_CIFAR10 "
            f"at an ImageFolder copy.") from exc
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2)  # N×H×W×3 in memory: already channels-last
    if image_size is not None and image_size != images.shape[-1]:
        images = resize_center_crop(images, image_size).contiguous(memory_format=torch.channels_last)
    return ImageTensors(images=images, labels=torch.as_tensor(ds.targets, dtype=torch.int64),
                        classes=list(ds.classes), description=spec.label, name=spec.name, split=split)
