"""ImageFolder copies (``PATH/train/<class>/…``, ``PATH/test/…``): listing, decoding, the decoded-tensor cache.

The ``folder`` source of :data:`cpnas.data.sources.SOURCES` (and the ImageFolder copies of
CIFAR-10, :mod:`cpnas.data.cifar`). Images are decoded once (libjpeg-turbo through
``torchvision.io``, PIL for other formats, :mod:`cpnas.data.decode`), optionally resized, and
cached as one uint8 tensor file under ``$CPNAS_CACHE`` keyed by a fingerprint of the folder
(names, sizes and modification times). Writing a new entry removes the older entries of the
same folder and settings, so a copy whose files change (or are re-copied with new times)
leaves one cache file, not one per change.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import torch

from cpnas.data.decode import _decode_bytes
from cpnas.data.images import ImageTensors
from cpnas.data.registry import DatasetSpec
from cpnas.errors import CpnasError
from cpnas.io import write_with

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

_CACHE_FORMAT = 1  # bump when the cached content or its meaning changes
_DECODE_CHUNK = 512  # files per decoding task: large enough to amortise, small enough for a smooth bar


def subdirs(path: Path) -> list[Path]:
    """The visible subfolders of ``path`` by name (none when it cannot be read)."""
    try:
        return sorted((Path(e.path) for e in os.scandir(path) if e.is_dir() and not e.name.startswith(".")),
                      key=lambda p: p.name)
    except OSError:
        return []


def find_test_dir(spec: DatasetSpec, root: Path) -> str | None:
    """The folder the ``test`` split reads: the first of ``spec.test_dirs`` that exists."""
    return next((c for c in spec.test_dirs if (root / c).is_dir()), None)


def load_folder(spec: DatasetSpec, split: str, path: Path, image_size: int | None, cache: Path, *,
                limit_per_class: int | None, progress: bool | None, **_: object) -> ImageTensors:
    """The ``folder`` source: split ``split`` of the ImageFolder copy at ``path``."""
    return load_image_folder(spec, path, split, image_size, cache, limit_per_class, progress)


def _scan_class_dir(directory: Path) -> list[os.DirEntry]:
    return sorted((e for e in os.scandir(directory)
                   if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS)), key=lambda e: e.name)


def load_image_folder(spec: DatasetSpec, root: Path, split: str, image_size: int | None, cache: Path,
                      limit_per_class: int | None, progress: bool | None) -> ImageTensors:
    """Split ``split`` of the ImageFolder copy at ``root``, decoded once and then read from the cache."""
    classes = [d.name for d in subdirs(root / "train")]
    split_dir = root / (split if split == "train" else find_test_dir(spec, root))
    split_classes = [d.name for d in subdirs(split_dir)]
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
                         f"{spec.layout_help}")
    all_jpeg = all(f.lower().endswith((".jpg", ".jpeg")) for f in files)
    description = folder_description(spec, root, classes, all_jpeg)
    key = hashlib.blake2b(repr((_CACHE_FORMAT, str(root), split, image_size, limit_per_class,
                                len(files), total_size, digest.hexdigest())).encode(),
                          digest_size=8).hexdigest()
    size_tag = "native" if image_size is None else f"{image_size}px"
    limit_tag = "" if limit_per_class is None else f"-first{limit_per_class}"
    cache_file = cache / f"{spec.name}-{split}-{size_tag}{limit_tag}-{key}.pt"
    label_tensor = torch.tensor(labels, dtype=torch.int64)

    images = _read_cache(cache_file, len(files), label_tensor)
    if images is None:
        logger.info("decoding %d images of %s (%s) from %s; the result is cached in %s",
                    len(files), description, split, split_dir, cache_file)
        images = _decode_files(files, image_size, f"{description} {split}", progress)
        _write_cache(cache_file, {"format": _CACHE_FORMAT, "images": images, "labels": label_tensor,
                                  "classes": classes, "source": str(split_dir)})
        _remove_stale_entries(cache_file, f"{spec.name}-{split}-{size_tag}{limit_tag}-", str(split_dir))
    else:
        logger.info("loaded %d decoded images of %s (%s) from the cache %s",
                    len(files), description, split, cache_file)
    return ImageTensors(images=images, labels=label_tensor, classes=classes,
                        description=description, name=spec.name, split=split)


def folder_description(spec: DatasetSpec, root: Path, classes: list[str], all_jpeg: bool) -> str:
    if spec.classes is not None:
        if tuple(classes) != spec.classes:
            logger.warning("%s: class folders %s differ from the %s classes %s", root, classes, spec.label,
                           list(spec.classes))
        return f"{spec.label} (JPEG copy)" if all_jpeg else f"{spec.label} (image-folder copy {root})"
    for class_set, label in spec.subsets.items():
        if set(classes) == class_set:
            return label
    return f"{spec.label}-layout folder {root}"


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


def _remove_stale_entries(current: Path, prefix: str, source: str) -> None:
    """Delete the cache files ``prefix<key>.pt`` beside ``current`` that hold the same ``source`` folder.

    They were written for an earlier state of the folder (other files, sizes or times) and would
    only be read again if it returned to exactly that state. Files of other folders, other image
    sizes or limits, and files that cannot be read are left alone; a process still reading a
    removed file keeps its open copy (POSIX), and a failed removal only costs disk space.
    """
    if not current.is_file():  # the write failed: keep what there is
        return
    pattern = re.compile(re.escape(prefix) + r"[0-9a-f]{16}\.pt")
    for path in current.parent.iterdir():
        if path == current or not pattern.fullmatch(path.name):
            continue
        try:
            stale = torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("source") == source
        except Exception:  # unreadable or foreign: not ours to delete
            continue
        if stale:
            try:
                path.unlink()
                logger.info("removed the cache file %s of an earlier state of %s", path, source)
            except OSError as exc:
                logger.warning("could not remove the stale cache file %s (%s)", path, exc)


def resize_center_crop(img: torch.Tensor, size: int) -> torch.Tensor:
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
        first = resize_center_crop(first, image_size)
    height, width = first.shape[-2:]
    out = torch.empty((len(files), 3, height, width), dtype=torch.uint8, memory_format=torch.channels_last)

    def decode_chunk(start: int) -> int:
        stop = min(start + _DECODE_CHUNK, len(files))
        for i in range(start, stop):
            img = _decode_bytes(Path(files[i]).read_bytes(), files[i])
            if image_size is not None:
                img = resize_center_crop(img, image_size)
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
