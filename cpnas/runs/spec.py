"""What a run is: a search (:class:`SearchSpec`) or a fixed genotype, then one training (:class:`RunSpec`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from cpnas.data.registry import DEFAULT_DATASET
from cpnas.errors import CpnasError
from cpnas.runs.files import METRICS
from cpnas.runs.layout import search_dir, train_dir

if TYPE_CHECKING:
    from cpnas.config import Config
    from cpnas.genotype import Genotype


Overrides = tuple[tuple[str, Any], ...]
"""Dotted config overrides as a sorted tuple of pairs (a frozen spec holds no dict)."""


def overrides(mapping: Mapping[str, Any] | None) -> Overrides:
    """``{key: value}`` as :data:`Overrides` (sorted, so equal mappings give equal specs)."""
    return tuple(sorted((mapping or {}).items()))


def apply(cfg: "Config", over: Overrides) -> "Config":
    """``cfg`` with ``over`` applied and checked (the same config :func:`cpnas.config.get_config` builds)."""
    from cpnas.config import apply_overrides, check_consistency

    return check_consistency(apply_overrides(cfg, dict(over))) if over else cfg


@dataclass(frozen=True)
class SearchSpec:
    """What to search: strategy, seed, β_P (``None``: the config's), dataset, config overrides, and whose it is.

    ``study`` places it (``None``: ``results/<scale>/search``, shared by the notebooks, the
    proxy and the recipe study; ``"ablation"``: the ablation's own). ``variant`` names a search
    whose overrides change the method, not its size (``gap``: ``search.indicator=gap_penalty``),
    so that it gets its own folder. ``data_root`` is the
    search's data folder when it differs from the training's (a CIFAR-10 search for an
    ImageNet training); it is not part of the run's identity.
    """

    strategy: str
    seed: int = 0
    beta_p: float | None = None
    dataset: str = DEFAULT_DATASET
    overrides: Overrides = ()
    study: str | None = None
    data_root: str | None = field(default=None, compare=False)
    variant: str | None = None

    def out(self, scale: str) -> Path:
        return search_dir(scale, self.strategy, self.seed, self.beta_p, self.dataset, study=self.study,
                          variant=self.variant)


@dataclass(frozen=True)
class RunSpec:
    """One run: a search (``search``) or a fixed ``genotype`` (a :class:`Genotype` or a JSON path), then one training.

    The training is ``name`` at ``size``, ``loss``, ``precision`` on ``dataset`` with
    ``seed``, on the base config given to :func:`cpnas.runs.run_or_load` plus ``overrides``. Its
    folder is :func:`train_dir` of ``folder`` (default ``name``), ``study`` and ``stage``.
    """

    name: str
    seed: int = 0
    search: SearchSpec | None = None
    genotype: "Genotype | str | None" = None
    size: str = "small"
    loss: str = "cp"
    precision: str = "binary"
    dataset: str = DEFAULT_DATASET
    overrides: Overrides = ()
    study: str | None = None
    stage: str = "train"
    folder: str | None = None

    def __post_init__(self) -> None:
        if (self.search is None) == (self.genotype is None):
            raise CpnasError(f"run {self.name!r}: give exactly one of 'genotype' or 'search'")

    def out(self, scale: str) -> Path:
        return train_dir(scale, self.folder or self.name, self.seed, study=self.study, stage=self.stage)

    def is_done(self, scale: str) -> bool:
        return (self.out(scale) / METRICS).exists()

    def waits_for_a_cell(self) -> bool:
        """A fixed genotype path that does not exist yet: the output of another run of the same batch."""
        return isinstance(self.genotype, (str, os.PathLike)) and not Path(self.genotype).is_file()


def first_per_key(items: Sequence[Any], key: Callable[[Any], Any]) -> list[Any]:
    """The first item of each ``key(item)``, in the order given."""
    seen: set[Any] = set()
    out = []
    for item in items:
        k = key(item)
        if k not in seen:
            seen.add(k)
            out.append(item)
    return out


def unique(specs: Sequence[RunSpec], scale: str) -> list[RunSpec]:
    """One spec per training folder, in the order given (studies share runs: computed once)."""
    return first_per_key(specs, lambda spec: spec.out(scale))
