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
import hashlib
import logging
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from cpnas.config import Config, DataConfig
from cpnas.data.decode import _decode_bytes  # noqa: F401  (one image file → tensor; also the stream's)
from cpnas.data.images import ImageTensors, subset
from cpnas.data.registry import SPLITS, DatasetSpec, get_dataset
from cpnas.data.splits import _first_per_class, _mix_seed
from cpnas.errors import CpnasError
from cpnas.io import write_with
from cpnas.paths import CACHE_ENV, default_cache_dir  # noqa: F401  (re-exported by cpnas.data)

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

_CACHE_FORMAT = 1  # bump when the cached content or its meaning changes
_DECODE_CHUNK = 512  # files per decoding task: large enough to amortise, small enough for a smooth bar


# --------------------------------------------------------------------------- locations


def _check_name(name: str) -> DatasetSpec:
    """The registered spec of ``name`` (an unknown name is one :class:`CpnasError` line)."""
    return get_dataset(name)


def _is_torchvision_cifar(path: Path) -> bool:
    return (path / "cifar-10-batches-py").is_dir() or (
        path.name == "cifar-10-batches-py" and (path / "batches.meta").is_file())


def _test_dir_name(spec: DatasetSpec, root: Path) -> str | None:
    """The folder the ``test`` split reads: the first of ``spec.test_dirs`` that exists."""
    return next((c for c in spec.test_dirs if (root / c).is_dir()), None)


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
    if _test_dir_name(spec, path) is None:
        first, *others = spec.test_dirs
        missing.append(f"{first}/" + "".join(f" (or {d}/)" for d in others))
    if missing:
        hint = ""
        if path.name in ("train", *spec.test_dirs):
            hint = f" It looks like a split folder: pass its parent {str(path.parent)!r} instead."
        elif any(c.is_dir() and (c / "train").is_dir() for c in _subdirs(path)):
            hint = " The dataset seems to be one level deeper: pass that subfolder instead."
        raise CpnasError(
            f"{label} data folder {str(path)!r} ({source}) has no {' and no '.join(missing)} "
            f"subfolder.{hint} Pass --data PATH{_set_env(spec)} to a folder with the right layout. "
            f"{spec.layout_help}")
    if not _subdirs(path / "train"):
        raise CpnasError(
            f"{label} data folder {str(path / 'train')!r} ({source}) has no class subfolders. "
            f"{spec.layout_help}")
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

    if path is None or _is_torchvision_cifar(path):
        raise CpnasError(f"streaming {spec.label} needs an ImageFolder copy (PATH/train/<class>/…); pass --data "
                         f"PATH{_set_env(spec)}, or read it in memory (--loader memory)")
    classes = [d.name for d in _subdirs(path / "train")]
    split_dir = path / (split if split == "train" else _test_dir_name(spec, path))
    description = _folder_description(spec, path, classes, all_jpeg=True)
    return folder_images(path, split_dir, classes, image_size=size, description=description, name=spec.name,
                         split=split, num_workers=num_workers)


def _load_cifar10(spec: DatasetSpec, split: str, path: Path | None, image_size: int | None, cache: Path, *,
                  limit_per_class: int | None, progress: bool | None, **_: object) -> ImageTensors:
    """CIFAR-10 from torchvision's files (downloaded when ``path`` is None), else from an ImageFolder copy."""
    if path is None or _is_torchvision_cifar(path):
        data = _load_torchvision_cifar10(spec, split, path, cache, image_size)
        if limit_per_class is not None:
            data = subset(data, _first_per_class(data.labels, limit_per_class))
        return data
    return _load_image_folder(spec, path, split, image_size, cache, limit_per_class, progress)


def _load_folder(spec: DatasetSpec, split: str, path: Path, image_size: int | None, cache: Path, *,
                 limit_per_class: int | None, progress: bool | None, **_: object) -> ImageTensors:
    return _load_image_folder(spec, path, split, image_size, cache, limit_per_class, progress)


def _load_synthetic(spec: DatasetSpec, split: str, path: None, image_size: int | None, cache: None, *,
                    n: int, seed: int, **_: object) -> ImageTensors:
    size = image_size or spec.native_size
    data = synthetic_images(n, seed=seed, split=split, **({"image_size": size} if size else {}),
                            **({"num_classes": spec.num_classes} if spec.num_classes else {}))
    return dataclasses.replace(data, name=spec.name, description=f"{spec.label} (seed {seed})")


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
    "torchvision-cifar10": Source(_load_cifar10, downloads=True, accepts=_is_torchvision_cifar),
    "folder": Source(_load_folder),
    "synthetic": Source(_load_synthetic, generated=True),
}
"""The sources a :class:`~cpnas.data.registry.DatasetSpec` may name; a new kind of source is one entry."""


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
        images = _resize_center_crop(images, image_size).contiguous(memory_format=torch.channels_last)
    return ImageTensors(images=images, labels=torch.as_tensor(ds.targets, dtype=torch.int64),
                        classes=list(ds.classes), description=spec.label, name=spec.name, split=split)


def _scan_class_dir(directory: Path) -> list[os.DirEntry]:
    return sorted((e for e in os.scandir(directory)
                   if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS)), key=lambda e: e.name)


def _load_image_folder(spec: DatasetSpec, root: Path, split: str, image_size: int | None, cache: Path,
                       limit_per_class: int | None, progress: bool | None) -> ImageTensors:
    classes = [d.name for d in _subdirs(root / "train")]
    split_dir = root / (split if split == "train" else _test_dir_name(spec, root))
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
                         f"{spec.layout_help}")
    all_jpeg = all(f.lower().endswith((".jpg", ".jpeg")) for f in files)
    description = _folder_description(spec, root, classes, all_jpeg)
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
    else:
        logger.info("loaded %d decoded images of %s (%s) from the cache %s",
                    len(files), description, split, cache_file)
    return ImageTensors(images=images, labels=label_tensor, classes=classes,
                        description=description, name=spec.name, split=split)


def _folder_description(spec: DatasetSpec, root: Path, classes: list[str], all_jpeg: bool) -> str:
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


