"""Datasets as in-memory uint8 tensors, seeded splits, and a fast batched loader (DESIGN §4).

* :mod:`~cpnas.data.registry` — the dataset registry: name → classes, env var,
  config section (recipe and image size), evaluation network, search overrides;
* :mod:`~cpnas.data.images` — :class:`ImageTensors`, the one dataset type, and :func:`subset`;
* :mod:`~cpnas.data.sources` — the sources and where a dataset lives (:func:`load_images`,
  :func:`load_dataset`); one module per kind of source: :mod:`~cpnas.data.folder` (ImageFolder
  copies, decoding and the decoded-tensor cache), :mod:`~cpnas.data.cifar` (torchvision's
  CIFAR-10), :mod:`~cpnas.data.synthetic`;
* :mod:`~cpnas.data.splits` — seeded, class-stratified splits (:func:`search_split`, …);
* :mod:`~cpnas.data.loader` — :class:`TensorLoader`: augmentation, normalisation, cutout.

Everything public is re-exported here: ``from cpnas import data; data.TensorLoader``.
"""

from __future__ import annotations

from cpnas.data.images import ImageTensors, subset
from cpnas.data.loader import TensorLoader, crop_flip, cutout_, normalize
from cpnas.data.registry import (CIFAR10_CLASSES, DEFAULT_DATASET, ENV_VARS, IMAGENETTE_WNIDS, SPLITS,
                                 DatasetSpec, dataset_names, get_dataset, register_dataset, train_config,
                                 unregister_dataset)
from cpnas.data.folder import IMAGE_EXTENSIONS
from cpnas.data.sources import SOURCES, Source, _check_name, load_dataset, load_images, resolve_root
from cpnas.data.synthetic import synthetic_images
from cpnas.data.splits import fraction_indices, search_split, train_val_split, validation_indices
from cpnas.paths import CACHE_ENV, default_cache_dir

__all__ = [
    "CACHE_ENV", "CIFAR10_CLASSES", "DATASETS", "DEFAULT_DATASET", "ENV_VARS", "IMAGENETTE_WNIDS",
    "IMAGE_EXTENSIONS", "SOURCES", "SPLITS", "DatasetSpec", "ImageTensors", "Source", "TensorLoader",
    "crop_flip", "cutout_", "dataset_names", "default_cache_dir", "fraction_indices", "get_dataset",
    "load_dataset", "load_images", "normalize", "register_dataset", "resolve_root", "search_split", "subset",
    "synthetic_images", "train_config", "train_val_split", "unregister_dataset", "validation_indices",
]


def __getattr__(name: str):
    if name == "DATASETS":  # the registered names now (a registry may grow after import)
        return dataset_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
