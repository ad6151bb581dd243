"""Datasets as in-memory uint8 tensors, seeded splits, and a fast batched loader (DESIGN §4).

Three datasets, one type (:class:`ImageTensors`: ``N×3×H×W`` uint8 images, int64
labels, class names and a human label for tables and figures):

* ``cifar10`` — from an ImageFolder copy (``--data PATH`` / ``$CPNAS_CIFAR10``,
  e.g. the development copy ``cifar10-jpeg``, labelled "CIFAR-10 (JPEG copy)"
  because its images were re-encoded as JPEG), from an existing torchvision
  download, or downloaded by torchvision when no path is given;
* ``imagenet`` — any ImageFolder path (``--data PATH`` / ``$CPNAS_IMAGENET``)
  with ``train/`` and ``val/`` (or ``test/``); a folder holding exactly the ten
  Imagenette classes is labelled "Imagenette (10 ImageNet classes)", never
  "ImageNet";
* ``synthetic`` — seeded, learnable images for tests.

Images are decoded once (libjpeg-turbo through ``torchvision.io``, PIL for other
formats), optionally resized, and cached as one uint8 tensor file under
``$CPNAS_CACHE`` (default ``~/.cache/cpnas``): a 2-core machine decodes the
60,000 CIFAR-10 JPEGs once in about ten CPU-seconds, and later runs load the cache in well
under a second. The whole dataset must fit in memory (memory-mapped from the
cache): CIFAR-10 is 184 MB, ImageNet at 64×64 about 16 GB; full ImageNet at
224×224 does not fit and is out of scope for this loader.

:class:`TensorLoader` batches, augments (pad-and-crop, flip, cutout — vectorised
over the batch), normalises to [-1, +1] (paper §3.1) and moves batches to a
device. Its randomness is derived from ``(seed, epoch)`` only, so a run resumed
at epoch *e* sees exactly the batches of an uninterrupted run (DESIGN §5).
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import math
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F

from cpnas.config import Config, DataConfig
from cpnas.errors import CpnasError
from cpnas.io import write_with

logger = logging.getLogger(__name__)

DATASETS: tuple[str, ...] = ("cifar10", "imagenet", "synthetic")
SPLITS: tuple[str, ...] = ("train", "test")
ENV_VARS: dict[str, str] = {"cifar10": "CPNAS_CIFAR10", "imagenet": "CPNAS_IMAGENET"}
CACHE_ENV = "CPNAS_CACHE"
IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

#: The official CIFAR-10 label order (also the alphabetical ImageFolder order).
CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
#: The ten ImageNet classes (WordNet ids) of Imagenette (fast.ai).
IMAGENETTE_WNIDS: frozenset[str] = frozenset({
    "n01440764", "n02102040", "n02979186", "n03000684", "n03028079",
    "n03394916", "n03417042", "n03425413", "n03445777", "n03888257"})

_CACHE_FORMAT = 1  # bump when the cached content or its meaning changes
_DECODE_CHUNK = 512  # files per decoding task: large enough to amortise, small enough for a smooth bar
_NAMES = {"cifar10": "CIFAR-10", "imagenet": "ImageNet"}


# --------------------------------------------------------------------------- type


@dataclass(frozen=True, eq=False)
class ImageTensors:
    """A whole dataset split in memory.

    ``images`` is ``N×3×H×W`` uint8 (raw intensities; :class:`TensorLoader`
    normalises), stored channels-last by the loaders of this module so that a
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


# --------------------------------------------------------------------------- locations


def default_cache_dir() -> Path:
    """``$CPNAS_CACHE``, else ``~/.cache/cpnas``: decoded tensors and torchvision downloads."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "cpnas").expanduser()


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise CpnasError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


def _layout_help(name: str) -> str:
    if name == "cifar10":
        return ("The expected layout is the torchvision ImageFolder one, PATH/train/<class>/*.jpg and "
                "PATH/test/<class>/*.jpg (class folders airplane … truck), or a torchvision download "
                "(a folder holding cifar-10-batches-py/). With network access, leave both the path and "
                "CPNAS_CIFAR10 unset and torchvision downloads the official CIFAR-10 automatically.")
    return ("The expected layout is the ImageFolder one, PATH/train/<class>/*.JPEG and "
            "PATH/val/<class>/*.JPEG (or PATH/test/…); ImageNet cannot be downloaded automatically, "
            "so extract it (or Imagenette) into that layout first.")


def _is_torchvision_cifar(path: Path) -> bool:
    return (path / "cifar-10-batches-py").is_dir() or (
        path.name == "cifar-10-batches-py" and (path / "batches.meta").is_file())


def _test_dir_name(name: str, root: Path) -> str | None:
    """The folder the ``test`` split reads: ``test/`` for CIFAR; ``val/`` (else ``test/``) for ImageNet."""
    candidates = ("test",) if name == "cifar10" else ("val", "test")
    return next((c for c in candidates if (root / c).is_dir()), None)


def resolve_root(name: str, root: str | os.PathLike | None = None) -> Path | None:
    """Where dataset ``name`` lives: ``root``, else ``$CPNAS_CIFAR10`` / ``$CPNAS_IMAGENET``.

    Returns ``None`` for ``synthetic`` and for ``cifar10`` when neither is set
    (meaning: torchvision downloads the official CIFAR-10 into the cache).
    ImageNet cannot be downloaded, so it needs one of them. A path that does not
    exist or lacks the ImageFolder layout (``train/`` and ``test/`` for CIFAR;
    ``train/`` and ``val/`` or ``test/`` for ImageNet-style folders) raises
    :class:`CpnasError` naming the path and the remedy.
    """
    _check_name(name)
    if name == "synthetic":
        return None
    env = ENV_VARS[name]
    source = "given as the data path"
    if root is None or str(root) == "":
        root = os.environ.get(env) or None
        source = f"from the environment variable {env}"
    if root is None:
        if name == "cifar10":
            return None
        raise CpnasError(
            f"no ImageNet folder given: pass --data PATH or set the environment variable {env} "
            f"to an ImageNet-style folder (for example an Imagenette copy). {_layout_help(name)}")
    path = Path(root).expanduser()
    label = _NAMES[name]
    if not path.is_dir():
        what = "is a file, not a folder" if path.exists() else "does not exist"
        raise CpnasError(
            f"{label} data folder {str(path)!r} ({source}) {what}. Pass --data PATH or set {env} "
            f"to the dataset folder. {_layout_help(name)}")
    if name == "cifar10" and _is_torchvision_cifar(path):
        return path.resolve()
    missing = [] if (path / "train").is_dir() else ["train/"]
    if _test_dir_name(name, path) is None:
        missing.append("test/" if name == "cifar10" else "val/ (or test/)")
    if missing:
        hint = ""
        if path.name in ("train", "test", "val"):
            hint = f" It looks like a split folder: pass its parent {str(path.parent)!r} instead."
        elif any(c.is_dir() and (c / "train").is_dir() for c in _subdirs(path)):
            hint = " The dataset seems to be one level deeper: pass that subfolder instead."
        raise CpnasError(
            f"{label} data folder {str(path)!r} ({source}) has no {' and no '.join(missing)} "
            f"subfolder.{hint} Pass --data PATH or set {env} to a folder with the right layout. "
            f"{_layout_help(name)}")
    if not _subdirs(path / "train"):
        raise CpnasError(
            f"{label} data folder {str(path / 'train')!r} ({source}) has no class subfolders. "
            f"{_layout_help(name)}")
    return path.resolve()


def _subdirs(path: Path) -> list[Path]:
    try:
        return sorted((Path(e.path) for e in os.scandir(path) if e.is_dir() and not e.name.startswith(".")),
                      key=lambda p: p.name)
    except OSError:
        return []


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
    quick looks. ``n`` and ``seed`` only apply to ``synthetic`` (``n`` defaults to
    ``DataConfig.synthetic_train`` / ``synthetic_test``).

    Decoded tensors are cached in ``cache_dir`` (default :func:`default_cache_dir`)
    under a key of dataset, split, size, limit and a fingerprint of the folder
    (file names, count, total size, modification times), so an edited folder is
    decoded afresh. ``progress``: ``None`` follows :mod:`cpnas.progress` (a bar
    unless ``$CI`` is set or ``CPNAS_PROGRESS=0``); ``True``/``False`` force it.
    """
    _check_name(name)
    if split not in SPLITS:
        raise CpnasError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if image_size is not None and (not isinstance(image_size, int) or isinstance(image_size, bool)
                                   or image_size < 1):
        raise CpnasError(f"image size must be a positive integer (pixels), got {image_size!r}")
    if limit_per_class is not None and limit_per_class < 1:
        raise CpnasError(f"limit_per_class must be a positive integer, got {limit_per_class!r}")
    if name == "synthetic":
        if n is None:
            n = DataConfig().synthetic_train if split == "train" else DataConfig().synthetic_test
        return synthetic_images(n, seed=seed, image_size=image_size or 32, split=split)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    path = resolve_root(name, root)
    if name == "cifar10" and (path is None or _is_torchvision_cifar(path)):
        data = _load_torchvision_cifar10(split, path, cache, image_size)
        if limit_per_class is not None:
            data = subset(data, _first_per_class(data.labels, limit_per_class))
        return data
    return _load_image_folder(name, path, split, image_size, cache, limit_per_class, progress)


def load_dataset(cfg: Config, dataset: str, split: str, root: str | os.PathLike | None = None, *,
                 seed: int = 0, cache_dir: str | os.PathLike | None = None,
                 progress: bool | None = None) -> ImageTensors:
    """The whole ``split`` of ``dataset`` at the image size and synthetic sizes of ``cfg``.

    CIFAR-10 at ``cfg.cifar.image_size`` (32 = native), ImageNet-style folders at
    ``cfg.imagenet.image_size``, synthetic data with ``cfg.data.synthetic_train``
    / ``synthetic_test`` samples drawn from ``seed``. No data fraction is applied
    here: callers take theirs with :func:`search_split` or :func:`fraction_indices`.
    """
    _check_name(dataset)
    if dataset == "imagenet":
        return load_images("imagenet", split, root, cfg.imagenet.image_size, cache_dir, progress=progress)
    if dataset == "synthetic":
        n = cfg.data.synthetic_train if split == "train" else cfg.data.synthetic_test
        return load_images("synthetic", split, image_size=cfg.cifar.image_size, n=n, seed=seed)
    size = None if cfg.cifar.image_size == 32 else cfg.cifar.image_size
    return load_images("cifar10", split, root, size, cache_dir, progress=progress)


def _load_torchvision_cifar10(split: str, path: Path | None, cache: Path,
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
        images = _resize_center_crop(images, image_size).contiguous(memory_format=torch.channels_last)
    return ImageTensors(images=images, labels=torch.as_tensor(ds.targets, dtype=torch.int64),
                        classes=list(ds.classes), description="CIFAR-10", name="cifar10", split=split)


def _scan_class_dir(directory: Path) -> list[os.DirEntry]:
    return sorted((e for e in os.scandir(directory)
                   if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS)), key=lambda e: e.name)


def _load_image_folder(name: str, root: Path, split: str, image_size: int | None, cache: Path,
                       limit_per_class: int | None, progress: bool | None) -> ImageTensors:
    classes = [d.name for d in _subdirs(root / "train")]
    split_dir = root / (split if split == "train" else _test_dir_name(name, root))
    split_classes = [d.name for d in _subdirs(split_dir)]
    unknown = sorted(set(split_classes) - set(classes))
    if unknown:
        raise CpnasError(
            f"{str(split_dir)!r} has class folders that {str(root / 'train')!r} lacks: "
            f"{', '.join(unknown[:5])}{' …' if len(unknown) > 5 else ''}. Both splits must use the same "
            f"class folder names, since labels are indices into the training classes.")
    files: list[str] = []
    labels: list[int] = []
    digest = hashlib.blake2b(digest_size=16)
    total_size = 0
    for label, cls in enumerate(classes):
        cls_dir = split_dir / cls
        if not cls_dir.is_dir():
            logger.warning("%s: no folder for class %r; the %s split has no images of it", split_dir, cls, split)
            continue
        entries = _scan_class_dir(cls_dir)
        if not entries:
            if split == "train":
                raise CpnasError(f"class folder {str(cls_dir)!r} holds no image files "
                                 f"({', '.join(IMAGE_EXTENSIONS)}); remove it or add its images.")
            logger.warning("class folder %s holds no image files", cls_dir)
        if limit_per_class is not None:
            entries = entries[:limit_per_class]
        for e in entries:
            st = e.stat()
            total_size += st.st_size
            digest.update(f"{cls}/{e.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
            files.append(e.path)
            labels.append(label)
    if not files:
        raise CpnasError(f"{str(split_dir)!r} holds no image files ({', '.join(IMAGE_EXTENSIONS)}). "
                         f"{_layout_help(name)}")
    all_jpeg = all(f.lower().endswith((".jpg", ".jpeg")) for f in files)
    description = _folder_description(name, root, classes, all_jpeg)
    key = hashlib.blake2b(repr((_CACHE_FORMAT, str(root), split, image_size, limit_per_class,
                                len(files), total_size, digest.hexdigest())).encode(),
                          digest_size=8).hexdigest()
    size_tag = "native" if image_size is None else f"{image_size}px"
    limit_tag = "" if limit_per_class is None else f"-first{limit_per_class}"
    cache_file = cache / f"{name}-{split}-{size_tag}{limit_tag}-{key}.pt"
    label_tensor = torch.tensor(labels, dtype=torch.int64)

    images = _read_cache(cache_file, len(files), label_tensor)
    if images is None:
        logger.info("decoding %d images of %s (%s) from %s; the result is cached in %s",
                    len(files), description, split, split_dir, cache_file)
        images = _decode_files(files, image_size, f"{description} {split}", progress)
        _write_cache(cache_file, {"format": _CACHE_FORMAT, "images": images, "labels": label_tensor,
                                  "classes": classes, "source": str(split_dir)})
    else:
        logger.info("loaded %d decoded images of %s (%s) from the cache %s",
                    len(files), description, split, cache_file)
    return ImageTensors(images=images, labels=label_tensor, classes=classes,
                        description=description, name=name, split=split)


def _folder_description(name: str, root: Path, classes: list[str], all_jpeg: bool) -> str:
    if name == "cifar10":
        if tuple(classes) != CIFAR10_CLASSES:
            logger.warning("%s: class folders %s differ from the CIFAR-10 classes %s", root, classes,
                           list(CIFAR10_CLASSES))
        return "CIFAR-10 (JPEG copy)" if all_jpeg else f"CIFAR-10 (image-folder copy {root})"
    if set(classes) == IMAGENETTE_WNIDS:
        return "Imagenette (10 ImageNet classes)"
    return f"ImageNet-layout folder {root}"


def _read_cache(path: Path, n: int, labels: torch.Tensor) -> torch.Tensor | None:
    """The cached images, or None when absent or unusable (then they are decoded again)."""
    if not path.is_file():
        return None
    try:
        # mmap: loading is instant and a large cache need not fit in RAM twice.
        blob = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        images = blob["images"]
        ok = (blob.get("format") == _CACHE_FORMAT and isinstance(images, torch.Tensor)
              and images.dtype == torch.uint8 and images.ndim == 4 and images.shape[:2] == (n, 3)
              and torch.equal(blob["labels"], labels))
    except Exception as exc:  # a truncated or foreign file raises many unrelated types
        logger.warning("ignoring the unreadable cache file %s (%s: %s); decoding the images again",
                       path, type(exc).__name__, exc)
        return None
    if not ok:
        logger.warning("ignoring the cache file %s: its content does not match the folder; "
                       "decoding the images again", path)
        return None
    return images


def _write_cache(path: Path, blob: dict) -> None:
    """Save atomically (temp file + rename); a failure only costs decoding again next time."""
    try:
        write_with(path, lambda fh: torch.save(blob, fh))
    except (OSError, CpnasError) as exc:
        logger.warning("could not write the cache file %s (%s); the decoded images are used "
                       "without caching", path, exc)


@functools.lru_cache(maxsize=1)
def _torchvision_decoders() -> tuple | None:
    try:
        from torchvision.io import ImageReadMode, decode_image, decode_jpeg
    except ImportError:  # deprecated in torchvision 0.29, to be removed: PIL then decodes everything
        return None
    return ImageReadMode.RGB, decode_image, decode_jpeg


def _decode_bytes(data: bytes, path: str) -> torch.Tensor:
    """Decode one image file's bytes to a 3×H×W uint8 tensor (grayscale/CMYK/palette → RGB).

    libjpeg-turbo through ``torchvision.io`` (about 3× faster than PIL on small
    JPEGs, identical pixels on the CIFAR-10 copy), PIL ``convert("RGB")`` for
    anything it cannot read.
    """
    decoders = _torchvision_decoders()
    if decoders is not None:
        rgb, decode_image, decode_jpeg = decoders
        try:
            raw = torch.frombuffer(bytearray(data), dtype=torch.uint8)
            # decode_jpeg directly: decode_image's format sniffing costs more than decoding a 32×32 JPEG
            decode = decode_jpeg if data[:3] == b"\xff\xd8\xff" else decode_image
            return decode(raw, mode=rgb)
        except (RuntimeError, ValueError):
            pass  # a format torchvision does not read (BMP, TIFF, …): PIL reads it below
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            rgb = im.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise CpnasError(f"cannot decode the image file {path!r} ({exc}); delete or replace it") from exc
    return torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8).view(
        rgb.height, rgb.width, 3).permute(2, 0, 1).contiguous()


def _resize_center_crop(img: torch.Tensor, size: int) -> torch.Tensor:
    """Shorter side to ``size`` (bilinear, antialiased), then a centre ``size×size`` crop; ``(…,3,H,W)`` uint8."""
    from torchvision.transforms.v2 import functional as TF

    if min(img.shape[-2:]) != size:
        img = TF.resize(img, size, antialias=True)
    if tuple(img.shape[-2:]) != (size, size):
        img = TF.center_crop(img, [size, size])
    return img


def _progress_disabled(progress: bool | None) -> bool:
    """tqdm's ``disable``: ``None`` follows the package policy (off under ``$CI`` or ``CPNAS_PROGRESS=0``)."""
    if progress is None:
        from cpnas.progress import progress_enabled

        return not progress_enabled()
    return not progress


def _decode_files(files: Sequence[str], image_size: int | None, desc: str,
                  progress: bool | None) -> torch.Tensor:
    with warnings.catch_warnings():
        # torchvision 0.29 warns on every decode call that its decoders are deprecated (_torchvision_decoders)
        warnings.filterwarnings("ignore", message=".*decoding and encoding capabilities of TorchVision",
                                category=DeprecationWarning)
        return _decode_all(files, image_size, desc, progress)


def _decode_all(files: Sequence[str], image_size: int | None, desc: str,
                progress: bool | None) -> torch.Tensor:
    from tqdm.auto import tqdm

    first = _decode_bytes(Path(files[0]).read_bytes(), files[0])
    if image_size is not None:
        first = _resize_center_crop(first, image_size)
    height, width = first.shape[-2:]
    out = torch.empty((len(files), 3, height, width), dtype=torch.uint8, memory_format=torch.channels_last)

    def decode_chunk(start: int) -> int:
        stop = min(start + _DECODE_CHUNK, len(files))
        for i in range(start, stop):
            img = _decode_bytes(Path(files[i]).read_bytes(), files[i])
            if image_size is not None:
                img = _resize_center_crop(img, image_size)
            elif img.shape[-2:] != (height, width):
                raise CpnasError(
                    f"images differ in size: {files[0]!r} is {width}×{height} but {files[i]!r} is "
                    f"{img.shape[-1]}×{img.shape[-2]}. Set an image size to resize every image to "
                    f"a common square size: --set cifar.image_size=64 (or imagenet.image_size=…).")
            out[i] = img
        return stop - start

    workers = max(1, min(8, os.cpu_count() or 1))
    pool = ThreadPoolExecutor(workers)
    try:
        with tqdm(total=len(files), desc=f"decoding {desc}", unit="img", leave=False,
                  disable=_progress_disabled(progress)) as bar:
            for done in pool.map(decode_chunk, range(0, len(files), _DECODE_CHUNK)):
                bar.update(done)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # on an error, do not decode the rest
    return out


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


# --------------------------------------------------------------------------- splits


def _mix_seed(*values: int) -> int:
    """A 63-bit seed from integers, identical on every platform and Python version."""
    data = b"".join(int(v).to_bytes(16, "little", signed=True) for v in values)
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little") >> 1


def _random_order(n: int, seed: int, labels: torch.Tensor | None) -> torch.Tensor:
    """A seeded permutation of ``range(n)``; with ``labels``, every prefix is class-balanced.

    Stratification: the *r*-th of a class's ``n_c`` samples (in random order)
    gets the key ``(r + u) / n_c`` with ``u ~ U(0, 1)``; sorting by the key
    interleaves the classes so that any prefix holds each class in proportion
    to its size, within one sample.
    """
    g = torch.Generator().manual_seed(_mix_seed(seed, n))
    if labels is None:
        return torch.randperm(n, generator=g)
    labels = torch.as_tensor(labels)
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {tuple(labels.shape)}")
    perm = torch.randperm(n, generator=g)
    shuffled = labels[perm]
    # rank of each (shuffled) sample within its class: stable sort by label, then position in the run
    by_class = torch.sort(shuffled, stable=True).indices
    counts = torch.bincount(shuffled)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty(n, dtype=torch.int64)
    rank[by_class] = torch.arange(n) - starts[shuffled[by_class]]
    key = (rank.double() + torch.rand(n, generator=g, dtype=torch.float64)) / counts[shuffled].double()
    return perm[torch.argsort(key, stable=True)]


def _count(n: int, fraction: float, what: str) -> int:
    if not 0.0 < fraction <= 1.0:
        raise CpnasError(f"{what} must be in (0, 1], got {fraction!r}")
    k = round(fraction * n)
    if k < 1:
        raise CpnasError(f"{what} {fraction!r} of {n} samples selects no sample; use a fraction of "
                         f"at least {1 / n:.2g}")
    return k


def search_split(n_train: int, train_fraction: float, score_fraction: float, seed: int, *,
                 labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Disjoint ``(idx_train, idx_score)`` subsets of the training set for the search (§3.1).

    The paper uses "50% of the training set … for architecture search" (the
    supernet weights) and "5% … for evaluation" (scoring the sampled paths,
    Alg. 1). Both are drawn from one seeded permutation, so they never overlap;
    with ``labels`` the permutation is class-stratified (helps the tiny score
    sets of reduced scales). Returned indices are sorted.
    """
    n_fit = _count(n_train, train_fraction, "the search train fraction")
    n_score = _count(n_train, score_fraction, "the search score fraction")
    if n_fit + n_score > n_train:
        raise CpnasError(f"search fractions {train_fraction} (train) + {score_fraction} (score) exceed "
                         f"the training set of {n_train} samples; they must sum to at most 1")
    order = _random_order(n_train, seed, labels)
    return order[:n_fit].sort().values, order[n_fit:n_fit + n_score].sort().values


def train_val_split(n: int, train_fraction: float, val_fraction: float, seed: int, *,
                    labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Sorted ``(idx_train, idx_val)``: a validation split held out, then the training subset.

    The validation split (``val_fraction`` of ``n``, class-stratified) is drawn with
    seed 0, so every run of a scale validates on the same images; the training
    subset (``train_fraction`` of ``n``) is then drawn from the rest with ``seed``.
    ``val_fraction == 0`` gives ``(fraction_indices(n, train_fraction, seed), None)``,
    the split of runs without validation.
    """
    if val_fraction == 0:
        return fraction_indices(n, train_fraction, seed, labels=labels), None
    n_val = _count(n, val_fraction, "the validation fraction")
    n_fit = _count(n, train_fraction, "the data fraction")
    if n_val + n_fit > n:
        raise CpnasError(f"train fraction {train_fraction} + validation fraction {val_fraction} exceed the "
                         f"training set of {n} samples; they must sum to at most 1")
    labels_t = torch.as_tensor(labels) if labels is not None else None
    idx_val = _random_order(n, 0, labels_t)[:n_val]
    keep = torch.ones(n, dtype=torch.bool)
    keep[idx_val] = False
    rest = torch.nonzero(keep).flatten()
    order = _random_order(len(rest), seed, labels_t[rest] if labels_t is not None else None)
    return rest[order[:n_fit]].sort().values, idx_val.sort().values


def fraction_indices(n: int, fraction: float, seed: int, *,
                     labels: torch.Tensor | None = None) -> torch.Tensor:
    """Sorted indices of a seeded ``fraction`` of ``range(n)`` (size-reduced scales).

    With ``labels`` the draw is class-stratified, keeping the class balance.
    ``fraction == 1`` returns every index.
    """
    k = _count(n, fraction, "the data fraction")
    if k == n:
        return torch.arange(n)
    return _random_order(n, seed, labels)[:k].sort().values


def _first_per_class(labels: torch.Tensor, limit: int) -> torch.Tensor:
    keep = torch.zeros_like(labels, dtype=torch.bool)
    for c in labels.unique():
        keep[torch.nonzero(labels == c).flatten()[:limit]] = True
    return torch.nonzero(keep).flatten()


def subset(data: ImageTensors, idx: torch.Tensor | Sequence[int]) -> ImageTensors:
    """The samples ``idx`` of ``data`` (a copy, same memory format), same classes and description."""
    idx = torch.as_tensor(idx, dtype=torch.int64)
    return ImageTensors(images=data.images[idx], labels=data.labels[idx], classes=list(data.classes),
                        description=data.description, name=data.name, split=data.split)


# --------------------------------------------------------------------------- batching


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 intensities to float in [-1, +1]: ``x / 127.5 − 1`` (§3.1).

    Division (not multiplication by 1/127.5) keeps 255 ↦ +1 exactly.
    """
    return images.float().div_(127.5).sub_(1.0)


def crop_flip(images: torch.Tensor, offsets: torch.Tensor, flip: torch.Tensor, pad: int) -> torch.Tensor:
    """Zero-pad by ``pad``, crop at per-sample ``offsets`` (B×2: row, col in [0, 2·pad]), mirror where ``flip``.

    Equivalent to torchvision's ``RandomCrop(size, padding=pad)`` +
    ``RandomHorizontalFlip`` per image, but one gather for the whole batch:
    the flip is folded into the column index, and each gathered element is a
    whole pixel (all channels). Works on uint8; the result is a channels-last
    ``B×C×H×W`` tensor, and a channels-last input needs no layout change.
    """
    b, c, h, w = images.shape
    hp, wp = h + 2 * pad, w + 2 * pad
    pixels = images.permute(0, 2, 3, 1).contiguous()  # no copy for channels-last input
    padded = F.pad(pixels, (0, 0, pad, pad, pad, pad)).reshape(b * hp * wp, c)
    dev = images.device
    offsets, flip = offsets.to(dev), flip.to(dev)
    ar_h, ar_w = torch.arange(h, device=dev), torch.arange(w, device=dev)
    rows = offsets[:, :1] + ar_h
    cols = torch.where(flip[:, None], offsets[:, 1:] + (w - 1) - ar_w, offsets[:, 1:] + ar_w)
    lin = rows[:, :, None] * wp + cols[:, None, :] + (torch.arange(b, device=dev) * (hp * wp))[:, None, None]
    return padded.index_select(0, lin.reshape(-1)).view(b, h, w, c).permute(0, 3, 1, 2)


def cutout_(x: torch.Tensor, centers: torch.Tensor, length: int) -> torch.Tensor:
    """Zero one ``length``-square per image, in place (DeVries & Taylor 2017; §3.1 "cutout").

    ``centers`` is B×2 (row, col), drawn uniformly over the image; the square
    spans ``[c − length//2, c + length//2)`` clipped at the borders, as in the
    reference code. Applied after normalisation, so the patch is 0 = mid-grey.
    """
    b, _, h, w = x.shape
    dev = x.device
    centers = centers.to(dev)
    half = length // 2
    ar_h, ar_w = torch.arange(h, device=dev), torch.arange(w, device=dev)
    in_rows = (ar_h >= centers[:, :1] - half) & (ar_h < centers[:, :1] + half)
    in_cols = (ar_w >= centers[:, 1:] - half) & (ar_w < centers[:, 1:] + half)
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])
    return x.mul_(keep[:, None].to(x.dtype))


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
    between data-parallel ranks (each gets ``n // num_shards`` samples).
    """

    def __init__(self, data: ImageTensors | tuple[torch.Tensor, torch.Tensor], batch_size: int, *,
                 shuffle: bool = False, drop_last: bool = False, augment: bool = False,
                 pad: int | None = None, cutout: int = 0, seed: int = 0, epoch: int = 0,
                 channels_last: bool = True, device: str | torch.device = "cpu",
                 shard: int = 0, num_shards: int = 1) -> None:
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
        self.shard, self.num_shards = shard, num_shards

    @property
    def num_samples(self) -> int:
        """Samples this loader (this shard) yields per epoch, before ``drop_last``."""
        return self.images.shape[0] // self.num_shards if self.num_shards > 1 else self.images.shape[0]

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
        if self.num_shards > 1:
            order = order[self.shard::self.num_shards][: self.num_samples]
        g = torch.Generator().manual_seed(_mix_seed(self.seed, self.epoch, self.shard, 1))
        stop = len(self) * self.batch_size if self.drop_last else len(order)
        for start in range(0, stop, self.batch_size):
            idx = order[start:start + self.batch_size]
            yield self._transform(self.images[idx], g), self.labels[idx].to(self.device, non_blocking=True)

    def _transform(self, batch: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        b, _, h, w = batch.shape
        batch = batch.to(self.device, non_blocking=True)
        if self.augment:
            offsets = torch.randint(0, 2 * self.pad + 1, (b, 2), generator=g)
            flip = torch.rand(b, generator=g) < 0.5
            batch = crop_flip(batch, offsets, flip, self.pad)  # already channels-last
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        else:
            batch = batch.contiguous()
        x = normalize(batch)  # keeps the memory format
        if self.cutout > 0:
            centers = torch.stack([torch.randint(0, h, (b,), generator=g),
                                   torch.randint(0, w, (b,), generator=g)], dim=1)
            cutout_(x, centers, self.cutout)
        return x
