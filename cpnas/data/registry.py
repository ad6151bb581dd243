"""The dataset registry: what the rest of the library may know about a dataset, by name.

A dataset is one :class:`DatasetSpec` and one :func:`register_dataset` call. The
spec says where the images come from (a source of :mod:`cpnas.data.sources`),
which environment variable names its folder, its classes, which section of the
config holds its training recipe and image size (§3.1: ``cfg.cifar`` or
``cfg.imagenet``), which evaluation network it trains (:mod:`cpnas.networks`)
and what the search changes on it (§3.1: lr and β_P on ImageNet). Search,
training, profiling and the CLI read these traits; none of them branches on a
dataset's name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping

from cpnas.config import Config
from cpnas.errors import CpnasError

if TYPE_CHECKING:
    from torch import nn

    from cpnas.config import TrainConfig

SPLITS: tuple[str, ...] = ("train", "test")
DEFAULT_DATASET = "cifar10"
"""The dataset of the paper's search and of every run that names none (§3.1: the search runs on CIFAR-10)."""

#: The official CIFAR-10 label order (also the alphabetical ImageFolder order).
CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
#: The ten ImageNet classes (WordNet ids) of Imagenette (fast.ai).
IMAGENETTE_WNIDS: frozenset[str] = frozenset({
    "n01440764", "n02102040", "n02979186", "n03000684", "n03028079",
    "n03394916", "n03417042", "n03425413", "n03445777", "n03888257"})


@dataclass(frozen=True)
class DatasetSpec:
    """Everything the library knows about one dataset.

    * ``name`` — the registry key: ``--dataset``, run keys and result folders use it.
    * ``label`` — the human name in messages and descriptions ("CIFAR-10").
    * ``source`` — a key of :data:`cpnas.data.sources.SOURCES`: ``torchvision-cifar10``
      (an ImageFolder copy, a torchvision download, or a download), ``folder``
      (ImageFolder layout only) or ``synthetic`` (drawn from a seed, sized by ``cfg.data``).
    * ``env_var`` — the environment variable naming its folder when ``--data`` is not given.
    * ``classes`` — the expected class folders (a copy with others is loaded with a
      warning); ``None``: whatever the folder holds.
    * ``num_classes`` — the classifier size of the full dataset, for the analytic
      profile at the paper's size (Table 2: 1000 on ImageNet); loaded data reports its own.
    * ``train_section`` — the :class:`~cpnas.config.Config` section holding the
      training recipe and the image size (``cifar`` or ``imagenet``).
    * ``network`` — the evaluation network class of :mod:`cpnas.networks` (a name, or a class).
    * ``native_size`` — the side of the stored images: asking for it means no resize.
    * ``test_dirs`` — folders the ``test`` split reads, the first that exists
      (ImageNet reports validation accuracy, Table 2: ``val/`` first).
    * ``paper`` — a dataset of the paper's tables: ``cpnas profile`` builds it at the paper's size.
    * ``search_overrides`` — search fields this dataset changes, each mapped to the
      :class:`~cpnas.config.Config` field holding the paper's value (§3.1).
    * ``subsets`` — human labels of known class subsets (Imagenette), by class set.
    * ``layout_help`` — one or two sentences on the expected folder layout, for errors.
    * ``loaders`` — how a scale reads it: ``memory`` (decoded once into uint8 tensors,
      :class:`~cpnas.data.TensorLoader`; the default) or ``stream`` (ImageFolder read by
      ``DataLoader`` workers, :mod:`cpnas.data.stream`), by scale name; ``$CPNAS_LOADER``
      (``cpnas … --loader``) overrides it. ImageNet streams at ``paper`` (1.28 M images at
      224 px do not fit in memory); the ``cpu``/``smoke`` Imagenette runs stay in memory.
    """

    name: str
    label: str
    source: str
    env_var: str | None = None
    classes: tuple[str, ...] | None = None
    num_classes: int | None = None
    train_section: str = "cifar"
    network: Any = "NetworkCIFAR"
    native_size: int | None = None
    test_dirs: tuple[str, ...] = ("test",)
    paper: bool = False
    search_overrides: Mapping[str, str] = field(default_factory=dict)
    subsets: Mapping[frozenset, str] = field(default_factory=dict)
    layout_help: str = ""
    loaders: Mapping[str, str] = field(default_factory=dict)

    def loader_for(self, cfg: Config) -> str:
        """``memory`` or ``stream``: forced by ``$CPNAS_LOADER``, else this dataset's choice at ``cfg.scale``."""
        from cpnas.data.stream import forced_loader

        if self.source == "synthetic":
            return "memory"
        return forced_loader() or self.loaders.get(cfg.scale, "memory")

    @property
    def generated(self) -> bool:
        """Drawn from a seed, not read from disk: its size comes from ``cfg.data``."""
        return self.source == "synthetic"

    def train_config(self, cfg: Config) -> "TrainConfig":
        """The training recipe (and image size) of this dataset in ``cfg``."""
        return getattr(cfg, self.train_section)

    def network_class(self) -> type["nn.Module"]:
        """The evaluation network class (§3.1) this dataset trains."""
        if not isinstance(self.network, str):
            return self.network
        from cpnas import networks

        return getattr(networks, self.network)


_REGISTRY: dict[str, DatasetSpec] = {}
DATASETS_BY_NAME: Mapping[str, DatasetSpec] = MappingProxyType(_REGISTRY)


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add ``spec`` to the registry (a name may be registered once) and return it."""
    if spec.name in _REGISTRY:
        raise ValueError(f"dataset {spec.name!r} is already registered")
    if spec.train_section not in {f.name for f in dataclasses.fields(Config)}:
        raise ValueError(f"dataset {spec.name!r}: no config section {spec.train_section!r}")
    _REGISTRY[spec.name] = spec
    return spec


def unregister_dataset(name: str) -> None:
    """Remove ``name`` from the registry (for tests that register a toy dataset)."""
    _REGISTRY.pop(name, None)


def dataset_names(*, paper: bool | None = None) -> tuple[str, ...]:
    """Registered names in registration order; ``paper=True`` keeps the datasets of the paper's tables."""
    return tuple(n for n, s in _REGISTRY.items() if paper is None or s.paper == paper)


def get_dataset(name: str) -> DatasetSpec:
    """The spec of dataset ``name``; an unknown name is one :class:`CpnasError` line listing the known ones."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise CpnasError(f"unknown dataset {name!r}; choose one of {', '.join(_REGISTRY)}") from None


def train_config(cfg: Config, dataset: str) -> "TrainConfig":
    """The training recipe of ``dataset`` in ``cfg`` (``cfg.cifar`` or ``cfg.imagenet``, §3.1)."""
    return get_dataset(dataset).train_config(cfg)


register_dataset(DatasetSpec(
    name="cifar10", label="CIFAR-10", source="torchvision-cifar10", env_var="CPNAS_CIFAR10",
    classes=CIFAR10_CLASSES, num_classes=10, train_section="cifar", network="NetworkCIFAR", native_size=32,
    test_dirs=("test",), paper=True,
    layout_help=("The expected layout is the torchvision ImageFolder one, PATH/train/<class>/*.jpg and "
                 "PATH/test/<class>/*.jpg (class folders airplane … truck), or a torchvision download "
                 "(a folder holding cifar-10-batches-py/). With network access, leave both the path and "
                 "CPNAS_CIFAR10 unset and torchvision downloads the official CIFAR-10 automatically.")))
register_dataset(DatasetSpec(
    name="imagenet", label="ImageNet", source="folder", env_var="CPNAS_IMAGENET", num_classes=1000,
    train_section="imagenet", network="NetworkImageNet", test_dirs=("val", "test"), paper=True,
    search_overrides={"search.lr": "imagenet_search_lr", "search.beta_p": "imagenet_beta_p"},
    subsets={IMAGENETTE_WNIDS: "Imagenette (10 ImageNet classes)"}, loaders={"paper": "stream"},
    layout_help=("The expected layout is the ImageFolder one, PATH/train/<class>/*.JPEG and "
                 "PATH/val/<class>/*.JPEG (or PATH/test/…); ImageNet cannot be downloaded automatically, "
                 "so extract it (or Imagenette) into that layout first.")))
register_dataset(DatasetSpec(
    name="synthetic", label="synthetic", source="synthetic", num_classes=10, train_section="cifar",
    network="NetworkCIFAR", native_size=32))

ENV_VARS: dict[str, str] = {s.name: s.env_var for s in _REGISTRY.values() if s.env_var}
"""The environment variable of each built-in dataset's folder (``CPNAS_CIFAR10``, ``CPNAS_IMAGENET``)."""


# --------------------------------------------------------------------------- a config for a dataset


def config_for(scale: str, overrides: Mapping[str, Any] | None = None, dataset: str | None = None) -> Config:
    """The scale's preset, then the search fields ``dataset`` changes (its ``search_overrides``, e.g. §3.1's
    ImageNet search lr and β_P), then ``overrides``: one order of resolution, the user's last. A key the
    user sets is never replaced."""
    from cpnas.config import apply_overrides, check_consistency, get_config

    cfg = get_config(scale, overrides)
    if dataset is not None:
        cfg = _with_dataset(cfg, dataset, keep=set(overrides or {}))
    return check_consistency(apply_overrides(cfg, {}))


def dataset_search_values(cfg: Config, dataset: str) -> dict[str, Any]:
    """The search fields ``dataset`` sets (§3.1), with the values ``cfg`` gives them (e.g. ``imagenet_search_lr``)."""
    return {key: getattr(cfg, source) for key, source in get_dataset(dataset).search_overrides.items()}


def _with_dataset(cfg: Config, dataset: str, keep: set[str]) -> Config:
    from cpnas.config import apply_overrides

    values = {k: v for k, v in dataset_search_values(cfg, dataset).items() if k not in keep}
    return dataclasses.replace(apply_overrides(cfg, values), search_dataset=dataset)


def for_dataset(cfg: Config, dataset: str) -> Config:
    """``cfg`` resolved for a search on ``dataset`` (the library's path to what :func:`config_for` does).

    A config built with ``config_for(..., dataset=dataset)`` is returned as it is. Otherwise the
    dataset's search fields are applied, except those whose value differs from the scale's
    preset: those were set by the caller, and what the caller sets is what runs.
    """
    from cpnas.config import _get_dotted, check_consistency, get_config

    if cfg.search_dataset == dataset:
        return cfg
    preset = get_config(cfg.scale)
    keep = {k for k in dataset_search_values(cfg, dataset) if _get_dotted(cfg, k) != _get_dotted(preset, k)}
    return check_consistency(_with_dataset(cfg, dataset, keep))
