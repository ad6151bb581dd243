"""The search-strategy protocol and its registry (DESIGN §2; NASLib's optimizer/trainer split).

A strategy is one module that subclasses :class:`Strategy` and decorates it with
:func:`register`; the built-in ones are :mod:`cpnas.strategies` (``cpnas``, ``bnas``,
``random``) and :mod:`cpnas.pcdarts` (``pcdarts``), listed once in
:data:`BUILTIN_MODULES` so that :func:`get_strategy` can import them. A strategy
carries its own traits — label, method name, schedule (for ``--dry-run``), whether
it needs an architecture split, a β_P it fixes — so no other module names it.
This module imports no strategy module at import time: there is no import cycle.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import torch

from cpnas.config import Config
from cpnas.errors import CpnasError
from cpnas.genotype import Genotype

BUILTIN_MODULES: tuple[str, ...] = ("cpnas.strategies", "cpnas.pcdarts", "cpnas.randomsearch")
"""Modules whose strategies register on import (a new built-in strategy adds its module here)."""


@dataclass
class SearchContext:
    """What every strategy gets: configuration, device, data and the RNG seed."""

    cfg: Config
    device: torch.device
    train_loader: Any  # search-train split (§3.1: 50% of the training set)
    score_loader: Any  # search-score split (§3.1: 5% of the training set)
    num_classes: int
    seed: int
    beta_p: float
    arch_loader: Any = None  # PC-DARTS: the split on which α is updated
    calib_loader: Any = None  # batches that re-estimate BN statistics before a score (default: train_loader)
    extra: dict = field(default_factory=dict)


class Strategy(ABC):
    """One search strategy. Subclasses register themselves with :func:`register`.

    Traits (class attributes, read without building the strategy):

    * ``name`` — the CLI / results name; ``label`` — its short label in plots and tables;
      ``title`` — its name in prose (default: the label);
      ``method`` — Table 1's "search method" column;
    * ``fixed_beta_p`` — a β_P the strategy imposes (BNAS†: 0), or ``None``;
    * ``uses_beta_p`` — whether Eq. 1's β_P means anything to it;
    * ``needs_arch_split`` — whether the search data needs a third (architecture) split;
    * ``settings`` — its own configuration section (:func:`cpnas.config.register_section`), or ``None``;
    * ``artifact_files`` — the files :meth:`artifacts` writes beside the genotype;
    * :meth:`plan` — its epochs and a summary of them, from the configuration alone;
      :meth:`epoch_kind` — which of its epochs cost alike (``make bench`` times one of each kind);
      :meth:`epoch_seconds` — the seconds of an epoch's search work, from its history record;
    * :meth:`search_batch_size` — the batch of its search-train (and architecture) split;
    * :meth:`supernets` — the networks it trains (built unallocated-sized first by the memory check).
    """

    name: str = ""
    label: str = ""
    title: str = ""
    method: str = ""
    fixed_beta_p: float | None = None
    uses_beta_p: bool = False
    needs_arch_split: bool = False
    settings: type | None = None
    artifact_files: tuple[str, ...] = ()

    @classmethod
    def search_batch_size(cls, cfg: Config) -> int:
        """The batch size of the search-train split (and of the architecture split, when it has one)."""
        return cfg.search.batch_size

    @classmethod
    def supernets(cls, cfg: Config, num_classes: int) -> list[torch.nn.Module]:
        """The networks a search of this strategy trains, freshly built (default: one 1-bit supernet)."""
        from cpnas.binary import BINARY
        from cpnas.networks import SearchNetwork

        s = cfg.search
        return [SearchNetwork(s.init_channels, num_classes, s.layers, s.reduction_layers, BINARY, nodes=s.nodes)]

    @classmethod
    def search_summary(cls, out: Any) -> dict[str, Any]:
        """What a finished search in folder ``out`` said of its own result, from its files (empty when
        unknown): ``own_search_indicator`` (its score of the cell it chose), ``search_child_acc`` (the
        1-bit supernet's last accuracy), ``median_snr``."""
        return {}

    @classmethod
    def unused_settings(cls, cfg: Config) -> dict[str, str]:
        """Keys of its section that ``cfg``'s other settings leave unread, each with what is read instead."""
        return {}

    @classmethod
    def plan(cls, cfg: Config) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """``(schedule, summary)``: one dict per search epoch, and a few rows that describe them (dry run)."""
        return [], []

    @classmethod
    def epoch_kind(cls, step: dict[str, Any]) -> str:
        """The kind of plan epoch ``step``: epochs of one kind cost alike (``""``: the strategy's ordinary
        epoch). The search-time projection of ``make bench`` times one epoch of each kind of the plan."""
        return ""

    @classmethod
    def epoch_seconds(cls, record: dict[str, Any]) -> float | None:
        """The seconds of the search work of an epoch, from the history record :meth:`run_epoch` returned
        (``None``: the epoch's wall clock, all of it search work)."""
        return None

    def __init__(self, ctx: SearchContext) -> None:
        self.ctx = ctx

    def schedule(self) -> list[dict[str, Any]]:
        """One dict per search epoch describing it (e.g. round, t, draw); may be empty."""
        return type(self).plan(self.ctx.cfg)[0]

    @abstractmethod
    def run_epoch(self, epoch: int) -> dict[str, Any]:
        """Run search epoch ``epoch`` (0-based) and return its history record."""

    @abstractmethod
    def genotype(self) -> Genotype:
        """The architecture found (valid after the last epoch)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def artifacts(self) -> dict[str, Any]:
        """Extra JSON-able outputs written beside the genotype (e.g. the indicator history)."""
        return {}

    score_names: tuple[str, ...] = ()
    """The scores :meth:`score_cells` gives each cell (empty: the strategy cannot score cells)."""

    def score_cells(self, cells: "list[Genotype]", *, max_images: int | None = None) -> list[dict[str, float]]:
        """Score finished-search cells with what the search learned: one ``{score name: value}`` per cell.

        Higher is better for every score. ``max_images`` caps the images of the score
        split a one-shot score reads. Used by the search-ranking study (:mod:`cpnas.ranking`).
        """
        raise CpnasError(f"the {self.name} strategy cannot score cells")

    @property
    def total_epochs(self) -> int:
        return len(self.schedule())


STRATEGIES: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: make ``cls`` available as ``get_strategy(cls.name)``."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} needs a name")
    STRATEGIES[cls.name] = cls
    return cls


def load_builtins() -> None:
    """Import the built-in strategy modules (each registers its strategies, and its config section, on import)."""
    for module in BUILTIN_MODULES:
        importlib.import_module(module)


def get_strategy(name: str) -> type[Strategy]:
    """The registered strategy ``name`` (built-ins imported on first use)."""
    load_builtins()
    try:
        return STRATEGIES[name]
    except KeyError:
        raise CpnasError(f"unknown strategy {name!r}; choose one of {', '.join(strategy_names())}") from None


def search_epochs(name: str, cfg: Config) -> int:
    """The number of search epochs of strategy ``name`` under ``cfg`` (its :meth:`Strategy.plan`)."""
    return len(get_strategy(name).plan(cfg)[0])


def strategy_names() -> tuple[str, ...]:
    """Every registered strategy's name, built-ins first in registration order."""
    load_builtins()
    return tuple(STRATEGIES)


def label_of(name: str) -> str:
    """A strategy's plot/table label (its name when it has none)."""
    cls = get_strategy(name)
    return cls.label or cls.name


def title_of(name: str) -> str:
    """A strategy's name in prose (its label when it has no title)."""
    cls = get_strategy(name)
    return cls.title or label_of(name)


def beta_p_of(name: str, requested: float | None, default: float) -> float | None:
    """The β_P a search of strategy ``name`` runs (and records) with: its fixed value, else the requested
    one, else ``default``. A requested value that contradicts a fixed one is an error. (A strategy with
    ``uses_beta_p = False`` records the value but does not read it.)
    """
    cls = get_strategy(name)
    if cls.fixed_beta_p is not None:
        if requested not in (None, cls.fixed_beta_p):
            raise CpnasError(f"{name} fixes β_P = {cls.fixed_beta_p:g}; drop --beta-p or choose another strategy")
        return cls.fixed_beta_p
    return requested if requested is not None else default




def search_for_beta(beta: float, family: str = "cpnas") -> tuple[str, float | None]:
    """``(strategy, β_P to request)`` of the search that runs Eq. 1 of strategy ``family`` at β_P = ``beta``.

    A registered variant of ``family`` that fixes that β_P is that search under its own name
    (β_P = 0 is BNAS†, Table 1's footnote); any other value is ``family`` asked for ``beta``.
    """
    base = get_strategy(family)
    for name in strategy_names():
        cls = STRATEGIES[name]
        if cls is not base and issubclass(cls, base) and cls.fixed_beta_p == beta:
            return name, None
    return family, beta
