"""Where images come from: ImageFolder copies, torchvision's CIFAR-10, seeded synthetic data (DESIGN §4).

Every registered dataset (:mod:`cpnas.data.registry`) names one of :data:`SOURCES`:

* ``torchvision-cifar10`` — an ImageFolder copy (``--data PATH`` / ``$CPNAS_CIFAR10``,
  e.g. the development copy ``cifar10-jpeg``, labelled "CIFAR-10 (JPEG copy)"
  because its images were re-encoded as JPEG), an existing torchvision
  download, or downloaded by torchvision when no path is given;
* ``folder`` — any ImageFolder path with ``train/`` and one of the dataset's test
  folders (ImageNet: ``val/`` or ``test/``); a folder holding a known class subset
  is labelled by it (ten Imagenette classes: "Imagenette (10 ImageNet classes)",
  never "ImageNet");
* ``synthetic`` — seeded, learnable images for tests.

Each source kind is a module: :mod:`~cpnas.data.cifar`, :mod:`~cpnas.data.folder`,
:mod:`~cpnas.data.synthetic`; this one resolves where a dataset lives and loads its splits.
Images are decoded once (libjpeg-turbo through ``torchvision.io``, PIL for other
formats), optionally resized, and cached as one uint8 tensor file under
``$CPNAS_CACHE`` (default ``~/.cache/cpnas``): a 2-core machine decodes the
60,000 CIFAR-10 JPEGs once in about ten CPU-seconds, and later runs load the cache in well
under a second. The whole dataset must fit in memory (memory-mapped from the
cache): CIFAR-10 is 184 MB, ImageNet at 64×64 about 16 GB; full ImageNet at
224×224 does not fit and is out of scope for this loader.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable

from cpnas.config import Config, DataConfig
from cpnas.data.cifar import is_torchvision_cifar, load_cifar10
from cpnas.data.folder import find_test_dir, folder_description, load_folder, subdirs
from cpnas.data.images import ImageTensors
from cpnas.data.registry import SPLITS, DatasetSpec, get_dataset
from cpnas.data.synthetic import load_synthetic
from cpnas.errors import CpnasError
from cpnas.paths import default_cache_dir


# --------------------------------------------------------------------------- locations


def _check_name(name: str) -> DatasetSpec:
    """The registered spec of ``name`` (an unknown name is one :class:`CpnasError` line)."""
    return get_dataset(name)


def _set_env(spec: DatasetSpec) -> str:
    return f" or set {spec.env_var}" if spec.env_var else ""


def resolve_root(name: str, root: str | os.PathLike | None = None) -> Path | None:
    """Where dataset ``name`` lives: ``root``, else its environment variable (``$CPNAS_CIFAR10``, …).

    Returns ``None`` for generated datasets (``synthetic``) and for a dataset its
    source can download (``cifar10``) when neither is set (meaning: torchvision
    downloads the official CIFAR-10 into the cache). ImageNet cannot be
    downloaded, so it needs one of them. A path that does not exist or lacks the
    ImageFolder layout (``train/`` and one of the dataset's test folders: ``test/``
    for CIFAR; ``val/`` or ``test/`` for ImageNet-style folders) raises
    :class:`CpnasError` naming the path and the remedy.
    """
    spec = get_dataset(name)
    src = SOURCES[spec.source]
    if src.generated:
        return None
    env = spec.env_var
    source = "given as the data path"
    if root is None or str(root) == "":
        root = (os.environ.get(env) or None) if env else None
        source = f"from the environment variable {env}"
    if root is None:
        if src.downloads:
            return None
        how = f"pass --data PATH or set the environment variable {env}" if env else "pass --data PATH"
        raise CpnasError(f"no {spec.label} folder given: {how} to a folder in its layout. {spec.layout_help}")
    path = Path(root).expanduser()
    label = spec.label
    if not path.is_dir():
        what = "is a file, not a folder" if path.exists() else "does not exist"
        raise CpnasError(
            f"{label} data folder {str(path)!r} ({source}) {what}. Pass --data PATH{_set_env(spec)} "
            f"to the dataset folder. {spec.layout_help}")
    if src.accepts(path):
        return path.resolve()
    missing = [] if (path / "train").is_dir() else ["train/"]
    if find_test_dir(spec, path) is None:
        first, *others = spec.test_dirs
        missing.append(f"{first}/" + "".join(f" (or {d}/)" for d in others))
    if missing:
        hint = ""
        if path.name in ("train", *spec.test_dirs):
            hint = f" It looks like a split folder: pass its parent {str(path.parent)!r} instead."
        elif any(c.is_dir() and (c / "train").is_dir() for c in subdirs(path)):
            hint = " The dataset seems to be one level deeper: pass that subfolder instead."
        raise CpnasError(
            f"{label} data folder {str(path)!r} ({source}) has no {' and no '.join(missing)} "
            f"subfolder.{hint} Pass --data PATH{_set_env(spec)} to a folder with the right layout. "
            f"{spec.layout_help}")
    if not subdirs(path / "train"):
        raise CpnasError(
            f"{label} data folder {str(path / 'train')!r} ({source}) has no class subfolders. "
            f"{spec.layout_help}")
    return path.resolve()


# --------------------------------------------------------------------------- loading


def load_images(name: str, split: str, root: str | os.PathLike | None = None,
                image_size: int | None = None, cache_dir: str | os.PathLike | None = None, *,
                limit_per_class: int | None = None, n: int | None = None, seed: int = 0,
                progress: bool | None = None) -> ImageTensors:
    """Load split ``train`` or ``test`` of dataset ``name`` as uint8 tensors.

    ``root`` is resolved by :func:`resolve_root`. For ImageNet-style folders
    ``test`` reads ``val/`` (the paper reports ImageNet validation accuracy,
    Table 2). ``image_size`` resizes at decode time (shorter side to
    ``image_size``, antialiased, then a centre crop to a square) — the reduced
    ImageNet scales; ``None`` keeps the native size (CIFAR stays 32×32).
    ``limit_per_class`` keeps the first files (in name order) of each class, for
    quick looks. ``n`` and ``seed`` only apply to generated datasets (``synthetic``;
    ``n`` defaults to ``DataConfig.synthetic_train`` / ``synthetic_test``).

    Decoded tensors are cached in ``cache_dir`` (default :func:`default_cache_dir`)
    under a key of dataset, split, size, limit and a fingerprint of the folder
    (file names, count, total size, modification times), so an edited folder is
    decoded afresh. ``progress``: ``None`` follows :mod:`cpnas.progress` (a bar
    unless ``$CI`` is set or ``CPNAS_PROGRESS=0``); ``True``/``False`` force it.
    """
    spec = get_dataset(name)
    if split not in SPLITS:
        raise CpnasError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if image_size is not None and (not isinstance(image_size, int) or isinstance(image_size, bool)
                                   or image_size < 1):
        raise CpnasError(f"image size must be a positive integer (pixels), got {image_size!r}")
    if limit_per_class is not None and limit_per_class < 1:
        raise CpnasError(f"limit_per_class must be a positive integer, got {limit_per_class!r}")
    src = SOURCES[spec.source]
    if src.generated:
        if n is None:
            n = DataConfig().synthetic_train if split == "train" else DataConfig().synthetic_test
        return src.load(spec, split, None, image_size, None, limit_per_class=limit_per_class, n=n, seed=seed,
                        progress=progress)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    path = resolve_root(name, root)
    return src.load(spec, split, path, image_size, cache, limit_per_class=limit_per_class, n=n, seed=seed,
                    progress=progress)


def load_dataset(cfg: Config, dataset: str, split: str, root: str | os.PathLike | None = None, *,
                 seed: int = 0, cache_dir: str | os.PathLike | None = None,
                 progress: bool | None = None) -> ImageTensors:
    """The whole ``split`` of ``dataset`` at the image size and synthetic sizes of ``cfg``.

    The image size is the one of the dataset's training section (CIFAR-10 at
    ``cfg.cifar.image_size``, 32 = native; ImageNet-style folders at
    ``cfg.imagenet.image_size``); generated data has ``cfg.data.synthetic_train`` /
    ``synthetic_test`` samples drawn from ``seed``. No data fraction is applied
    here: callers take theirs with :func:`search_split` or :func:`fraction_indices`.
    """
    spec = get_dataset(dataset)
    size = spec.train_config(cfg).image_size
    if spec.loader_for(cfg) == "stream":
        return _stream_split(spec, split, resolve_root(dataset, root), size, cfg.data.num_workers)
    if SOURCES[spec.source].generated:
        n = cfg.data.synthetic_train if split == "train" else cfg.data.synthetic_test
        return load_images(dataset, split, image_size=size, n=n, seed=seed)
    if size == spec.native_size:
        size = None  # the stored images as they are: no resize pass
    return load_images(dataset, split, root, size, cache_dir, progress=progress)


def _stream_split(spec: DatasetSpec, split: str, path: Path | None, size: int, num_workers: int) -> ImageTensors:
    """The split as a :class:`~cpnas.data.stream.FolderImages`: listed now, decoded by the loader's workers."""
    from cpnas.data.stream import folder_images

    if path is None or is_torchvision_cifar(path):
        raise CpnasError(f"streaming {spec.label} needs an ImageFolder copy (PATH/train/<class>/…); pass --data "
                         f"PATH{_set_env(spec)}, or read it in memory (--loader memory)")
    classes = [d.name for d in subdirs(path / "train")]
    split_dir = path / (split if split == "train" else find_test_dir(spec, path))
    description = folder_description(spec, path, classes, all_jpeg=True)
    return folder_images(path, split_dir, classes, image_size=size, description=description, name=spec.name,
                         split=split, num_workers=num_workers)


@dataclasses.dataclass(frozen=True)
class Source:
    """How one kind of dataset is read.

    ``load(spec, split, path, image_size, cache, *, limit_per_class, n, seed, progress)``
    returns the split; ``downloads``: no folder given means fetching it into the
    cache; ``generated``: drawn from a seed, no folder at all; ``accepts(path)``: a
    layout other than ImageFolder's that the source reads as is.
    """

    load: Callable[..., ImageTensors]
    downloads: bool = False
    generated: bool = False
    accepts: Callable[[Path], bool] = lambda path: False


SOURCES: dict[str, Source] = {
    "torchvision-cifar10": Source(load_cifar10, downloads=True, accepts=is_torchvision_cifar),
    "folder": Source(load_folder),
    "synthetic": Source(load_synthetic, generated=True),
}
"""The sources a :class:`~cpnas.data.registry.DatasetSpec` may name; a new kind of source is one entry."""


