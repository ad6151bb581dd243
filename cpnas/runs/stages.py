"""The two stages of a run, :data:`SEARCH` and :data:`TRAIN`: each one's folder, cache key, finished test, load
and compute, and the load-else-compute of each, :func:`search_or_load` and :func:`train_or_load`.

A finished stage is read from its folder after its stored key is checked against the one asked for
(:mod:`cpnas.runs.keys`), never recomputed; an unfinished one is run, or resumed from its checkpoint.
The algorithms are :func:`cpnas.search.run_search` and :func:`cpnas.evaluation.train_genotype`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from cpnas.data.registry import DEFAULT_DATASET
from cpnas.errors import CpnasError
from cpnas.runs.files import COMPLETE, CONFIG, GENOTYPE, METRICS
from cpnas.runs.keys import run_key, search_key
from cpnas.runs.layout import search_dir, train_dir
from cpnas.runs.spec import RunSpec, SearchSpec
from cpnas.runs.spec import apply as apply_spec

if TYPE_CHECKING:
    from cpnas.config import Config
    from cpnas.genotype import Genotype
    from cpnas.search import SearchResult


def search_finished(folder: str | os.PathLike) -> bool:
    """Whether a search folder holds a finished search (its ``complete.json``, written last)."""
    return (Path(folder) / COMPLETE).exists()


def train_finished(folder: str | os.PathLike) -> bool:
    """Whether a training folder holds a finished training (its ``metrics.json``, written last)."""
    return (Path(folder) / METRICS).exists()


def load_metrics(folder: str | os.PathLike) -> dict[str, Any]:
    """The ``metrics.json`` of a finished training folder."""
    from cpnas.io import read_json

    return read_json(Path(folder) / METRICS)


def search_or_load(strategy: str, cfg: "Config", *, seed: int = 0, beta_p: float | None = None,
                   dataset: str = DEFAULT_DATASET, data_root: str | os.PathLike | None = None,
                   device: str = "auto", out: str | os.PathLike | None = None,
                   compute: bool = True) -> "SearchResult":
    """Load a finished search from ``out`` (default: the notebooks' folder, :func:`cpnas.runs.search_dir`)
    if its key (:func:`cpnas.runs.keys.search_key`) is today's, else run or resume it.

    Re-running a notebook therefore costs nothing once its searches are done, and an
    interrupted search continues from its last checkpoint. ``compute=False`` (a notebook's
    ``CPNAS_COMPUTE=0``) only loads: an unfinished search is one clear error, not a run.
    """
    from cpnas.data.registry import for_dataset
    from cpnas.io import read_json
    from cpnas.search import load_search, run_search

    cfg = for_dataset(cfg, dataset)
    out = Path(out) if out is not None else search_dir(cfg.scale, strategy, seed, beta_p, dataset)
    if not compute and not search_finished(out):
        raise CpnasError(f"no finished {strategy} search at {out}: CPNAS_COMPUTE=0 shows finished runs only; "
                         f"run with CPNAS_COMPUTE=1 (the default) to compute it")
    if search_finished(out):
        stored = read_json(out / CONFIG)["config"]
        if search_key(stored) != search_key(cfg.to_dict()):
            raise CpnasError(f"{out} holds a search run with another configuration than scale "
                             f"{cfg.scale!r} now gives; move it away (or delete it) to search again")
        return load_search(out)
    return run_search(strategy, cfg, dataset=dataset, data_root=data_root, seed=seed, out=out,
                      resume=True, device=device, beta_p=beta_p)


def train_or_load(name: str, genotype: "Genotype | str | os.PathLike", cfg: "Config", *, size: str = "small",
                  dataset: str = DEFAULT_DATASET, data_root: str | os.PathLike | None = None, seed: int = 0,
                  loss: str = "cp", precision: str = "binary", device: str = "auto", search: Any = None,
                  out: str | os.PathLike | None = None) -> dict[str, Any]:
    """Load ``<out>/metrics.json`` if the run is finished and its key (:func:`cpnas.runs.keys.run_key`) is
    today's, else train or resume it (:func:`cpnas.evaluation.train_genotype`).

    ``out`` defaults to :func:`cpnas.runs.train_dir` ``(cfg.scale, name, seed)``.
    ``genotype`` is a :class:`Genotype` or a path to a genotype JSON. ``search``,
    a :class:`~cpnas.search.SearchResult`, records where the genotype came from
    and what the search cost (Table 1's "search cost").
    """
    from cpnas.evaluation import train_genotype
    from cpnas.genotype import Genotype, load_genotype
    from cpnas.paths import portable
    from cpnas.train import config_difference

    out = Path(out) if out is not None else train_dir(cfg.scale, name, seed)
    genotype_path = None
    if search is not None:
        genotype_path = Path(search.out) / GENOTYPE
    if not isinstance(genotype, Genotype):
        genotype_path = Path(genotype)
        genotype = load_genotype(genotype_path)
    if train_finished(out):
        metrics = load_metrics(out)
        key = run_key(genotype, cfg, dataset=dataset, size=size, seed=seed, loss=loss, precision=precision)
        if metrics.get("run") != key:
            raise CpnasError(f"{out} holds a training run of another genotype or configuration "
                             f"({config_difference(metrics.get('run'), key)}); move it away (or delete it) to "
                             f"train again")
        return metrics
    extra: dict[str, Any] = {"name": name}
    if search is not None:
        extra["search"] = {"out": portable(search.out), "strategy": _search_strategy(Path(search.out)),
                           "cost": search.cost}
    return train_genotype(genotype, cfg, out=out, size=size, dataset=dataset, data_root=data_root, seed=seed,
                          loss=loss, precision=precision, resume=True, device=device,
                          genotype_path=genotype_path, extra=extra)


def _search_strategy(search_out: Path) -> str | None:
    """The strategy of a finished search, from the ``config.json`` the search loop wrote."""
    from cpnas.io import read_json

    try:
        return read_json(search_out / CONFIG)["run"]["strategy"]
    except (CpnasError, KeyError, TypeError):
        return None


def search_of(search: SearchSpec, cfg: "Config", *, data_root: str | os.PathLike | None = None,
              device: str = "auto") -> "SearchResult":
    """The :class:`~cpnas.search.SearchResult` of a spec's search, loaded or run (:func:`search_or_load`).

    ``cfg`` is the base config (its scale places the search); the spec's overrides go on top.
    """
    return search_or_load(search.strategy, apply_spec(cfg, search.overrides), seed=search.seed,
                          beta_p=search.beta_p, dataset=search.dataset,
                          data_root=search.data_root if search.data_root is not None else data_root,
                          device=device, out=search.out(cfg.scale))


@dataclass(frozen=True)
class Stage:
    """One stage of a run (:data:`SEARCH`, :data:`TRAIN`, or a study's own, e.g. the ranking's scoring of a
    finished search): its folder, its cache key, whether it finished, how a finished one is loaded, and how it
    is computed.

    ``compute`` loads the stage when it is finished (refusing a folder whose key differs from the
    one asked for, with one line), else runs or resumes it.
    """

    name: str
    folder: Callable[[Any, str], Path]
    key: Callable[..., dict[str, Any]]
    is_finished: Callable[[Path], bool]
    load: Callable[[Path], Any]
    compute: Callable[..., Any]


def _search_key(search: SearchSpec, cfg: "Config") -> dict[str, Any]:
    """A search's cache key: the config sections it depends on (:func:`search_or_load` checks it)."""
    from cpnas.data.registry import for_dataset

    return search_key(for_dataset(apply_spec(cfg, search.overrides), search.dataset).to_dict())


def _load_search(folder: Path) -> "SearchResult":
    from cpnas.search import load_search

    return load_search(folder)


def _train_key(spec: RunSpec, cfg: "Config", genotype: "Genotype") -> dict[str, Any]:
    """A training's cache key (:func:`cpnas.runs.keys.run_key`) for the cell ``genotype``."""
    return run_key(genotype, apply_spec(cfg, spec.overrides), dataset=spec.dataset, size=spec.size, seed=spec.seed,
                   loss=spec.loss, precision=spec.precision)


def _train(spec: RunSpec, cfg: "Config", genotype: Any, *, search: Any = None,
           data_root: str | os.PathLike | None = None, device: str = "auto") -> dict[str, Any]:
    return train_or_load(spec.name, genotype, apply_spec(cfg, spec.overrides), size=spec.size,
                         dataset=spec.dataset, data_root=data_root, seed=spec.seed, loss=spec.loss,
                         precision=spec.precision, device=device, search=search, out=spec.out(cfg.scale))


SEARCH = Stage("search", lambda search, scale: search.out(scale), _search_key, search_finished, _load_search,
               search_of)
"""The search stage: ``results/<scale>[/<study>]/search/<name>/seed<N>``, keyed by the config's search and data
sections (:func:`cpnas.runs.keys.search_key`), finished when ``complete.json`` exists (:func:`search_or_load`)."""

TRAIN = Stage("train", lambda spec, scale: spec.out(scale), _train_key, train_finished, load_metrics, _train)
"""The training stage: ``results/<scale>[/<study>]/<stage>/<name>/seed<N>``, keyed by
:func:`cpnas.runs.keys.run_key`, finished when ``metrics.json`` exists (:func:`train_or_load`)."""
