"""Run or load: the two stages of a run (:data:`SEARCH`, :data:`TRAIN`), :func:`run_or_load` and the one
parallel runner :func:`run_all`, for the :class:`~cpnas.runs.RunSpec` values every study lists.

A run's search is computed (or loaded) first, then its training; a finished stage is read from its
folder after its cache key is checked, never recomputed. ``train_many`` is the notebooks' form of
:func:`run_all` (run names to dicts).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from cpnas.config import Config
from cpnas.errors import CpnasError
from cpnas.runs.files import COMPLETE, METRICS
from cpnas.runs.spec import RunSpec, SearchSpec
from cpnas.runs.spec import apply as apply_spec
from cpnas.runs.spec import unique as unique_specs


@dataclass
class RunResult:
    """A finished run: the training's metrics and, when it searched, its search."""

    metrics: dict[str, Any]
    search: Any = None  # the cpnas.search.SearchResult of its search, if it searched


def search_of(search: SearchSpec, cfg: Config, *, data_root: str | os.PathLike | None = None,
              device: str = "auto") -> Any:
    """The :class:`~cpnas.search.SearchResult` of a spec's search, loaded or run (:func:`cpnas.search.search_or_load`).

    ``cfg`` is the base config (its scale places the search); the spec's overrides go on top.
    """
    from cpnas.search import search_or_load

    return search_or_load(search.strategy, apply_spec(cfg, search.overrides), seed=search.seed,
                          beta_p=search.beta_p, dataset=search.dataset,
                          data_root=search.data_root if search.data_root is not None else data_root,
                          device=device, out=search.out(cfg.scale))


@dataclass(frozen=True)
class Stage:
    """One stage of a run (:data:`SEARCH`, :data:`TRAIN`): its folder, its cache key, whether it finished,
    how a finished one is loaded, and how it is computed.

    ``compute`` loads the stage when it is finished (refusing a folder whose key differs from the
    one asked for, with one line), else runs or resumes it.
    """

    name: str
    folder: Callable[[Any, str], Path]
    key: Callable[..., dict[str, Any]]
    is_finished: Callable[[Path], bool]
    load: Callable[[Path], Any]
    compute: Callable[..., Any]


def _search_key(search: SearchSpec, cfg: Config) -> dict[str, Any]:
    """A search's cache key: the config sections it depends on (:func:`cpnas.search.search_or_load` checks it)."""
    from cpnas.data.registry import for_dataset
    from cpnas.search import _search_part

    return _search_part(for_dataset(apply_spec(cfg, search.overrides), search.dataset).to_dict())


def _search_finished(folder: Path) -> bool:
    return (Path(folder) / COMPLETE).exists()


def _load_search(folder: Path) -> Any:
    from cpnas.search import load_search

    return load_search(folder)


def _train_key(spec: RunSpec, cfg: Config, genotype: Any) -> dict[str, Any]:
    """A training's cache key (:func:`cpnas.evaluation.run_key`) for the cell ``genotype``."""
    from cpnas.evaluation import run_key

    return run_key(genotype, apply_spec(cfg, spec.overrides), dataset=spec.dataset, size=spec.size, seed=spec.seed,
                   loss=spec.loss, precision=spec.precision)


def _train_finished(folder: Path) -> bool:
    return (Path(folder) / METRICS).exists()


def _load_metrics(folder: Path) -> dict[str, Any]:
    from cpnas.io import read_json

    return read_json(Path(folder) / METRICS)


def _train(spec: RunSpec, cfg: Config, genotype: Any, *, search: Any = None,
           data_root: str | os.PathLike | None = None, device: str = "auto") -> dict[str, Any]:
    from cpnas.evaluation import train_or_load

    return train_or_load(spec.name, genotype, apply_spec(cfg, spec.overrides), size=spec.size,
                         dataset=spec.dataset, data_root=data_root, seed=spec.seed, loss=spec.loss,
                         precision=spec.precision, device=device, search=search, out=spec.out(cfg.scale))


SEARCH = Stage("search", lambda search, scale: search.out(scale), _search_key, _search_finished, _load_search,
               lambda search, cfg, **kw: search_of(search, cfg, **kw))
"""The search stage: ``results/<scale>[/<study>]/search/<name>/seed<N>``, keyed by the config's search and data
sections, finished when ``complete.json`` exists (:mod:`cpnas.search`)."""

TRAIN = Stage("train", lambda spec, scale: spec.out(scale), _train_key, _train_finished, _load_metrics, _train)
"""The training stage: ``results/<scale>[/<study>]/<stage>/<name>/seed<N>``, keyed by :func:`cpnas.evaluation.run_key`,
finished when ``metrics.json`` exists (:func:`cpnas.evaluation.train_or_load`)."""


def run_or_load(spec: RunSpec, cfg: Config, *, data_root: str | os.PathLike | None = None,
                device: str = "auto") -> RunResult:
    """The one run-or-load of :mod:`cpnas.runs`' specs: load the finished run, else search (or load the
    search) and train or resume it (:data:`SEARCH`, :data:`TRAIN`).

    ``cfg`` is the base config (its scale places the run); the spec's overrides go on top.
    The search reads ``spec.search.data_root`` if given, else ``data_root`` when it runs
    on the training's dataset.
    """
    search = None
    genotype: Any = spec.genotype
    if spec.search is not None:
        s = spec.search
        root = s.data_root if s.data_root is not None else (data_root if s.dataset == spec.dataset else None)
        with _lock_unless(SEARCH.is_finished(s.out(cfg.scale)), s.out(cfg.scale)):  # another worker computing it: wait,
            search = search_of(s, cfg, data_root=root, device=device)        # then load what it found
        genotype = search.genotype
    with _lock_unless(spec.is_done(cfg.scale), spec.out(cfg.scale)):
        metrics = TRAIN.compute(spec, cfg, genotype, search=search, data_root=data_root, device=device)
    return RunResult(metrics, search)


def _job(spec: RunSpec, cfg: Config, data_root: Any, device: str) -> dict[str, Any]:
    """One worker job of :func:`run_all` (module level, so spawned workers can import it)."""
    return run_or_load(spec, cfg, data_root=data_root, device=device).metrics


def _lock_unless(finished: bool, folder: Path):
    """:class:`cpnas.io.run_lock` of ``folder`` while its run is computed; a finished run is only read (no lock,
    so a read-only checkout of finished runs loads)."""
    import contextlib

    from cpnas.io import run_lock

    return contextlib.nullcontext() if finished else run_lock(folder)


def _search_job(spec: RunSpec, cfg: Config, data_root: Any, device: str) -> None:
    """One worker job of :func:`run_all`'s first round: the search ``spec`` needs, computed (or loaded)."""
    from cpnas.io import run_lock

    s = spec.search
    root = s.data_root if s.data_root is not None else (data_root if s.dataset == spec.dataset else None)
    with run_lock(s.out(cfg.scale)):
        search_of(s, cfg, data_root=root, device=device)


def run_all(specs: Sequence[RunSpec], cfg: Config, *, workers: int = 1,
            data_root: str | os.PathLike | None = None, device: str = "auto", executor: str = "local",
            slurm: Any = None, desc: str = "runs", names: Sequence[str] | None = None,
            load: bool = True) -> list[RunResult] | None:
    """The one parallel runner: every unfinished run of ``specs``, ``workers`` at a time
    (:func:`cpnas.parallel.run_jobs`, any of its executors), then every run loaded.

    Finished runs are not started; interrupted ones resume from their checkpoints. The
    unfinished searches the runs need go first, one job per search (so no two jobs compute
    one search), then the trainings; a run whose fixed genotype is a file another run of the
    batch writes (:meth:`RunSpec.waits_for_a_cell`) goes in a last round. Each run folder is
    locked while it is computed (:class:`cpnas.io.run_lock`). ``names`` labels the runs in the log (default: their names).
    Returns one :class:`RunResult` per spec, in order (``None`` with ``load=False``).
    """
    from cpnas.parallel import run_jobs

    labels = dict(zip(map(id, specs), names)) if names is not None else {}
    todo = [s for s in unique_specs(specs, cfg.scale) if not s.is_done(cfg.scale)]
    searches: dict[Path, Any] = {}
    for s in todo:
        if s.search is not None and not SEARCH.is_finished(s.search.out(cfg.scale)):
            searches.setdefault(s.search.out(cfg.scale), s)
    errors: list[str] = []
    if searches:  # the searches first, each once: the trainings that need them are submitted after them
        try:
            run_jobs([(_search_job, {"spec": s, "cfg": cfg, "data_root": data_root, "device": device})
                      for s in searches.values()], workers=workers, desc="searches", executor=executor, slurm=slurm,
                     names=[f"search {s.search.strategy} seed {s.search.seed}" for s in searches.values()])
        except CpnasError as exc:  # the other runs go on; those of a failed search are not started
            errors.append(str(exc))
            todo = [s for s in todo if s.search is None or SEARCH.is_finished(s.search.out(cfg.scale))]
    later = [s for s in todo if s.waits_for_a_cell()]
    for batch in ([s for s in todo if s not in later], later):
        if batch:
            try:
                run_jobs([(_job, {"spec": s, "cfg": cfg, "data_root": data_root, "device": device})
                          for s in batch], workers=workers, desc=desc, executor=executor, slurm=slurm,
                         names=[labels.get(id(s), f"{s.name} seed {s.seed}") for s in batch])
            except CpnasError as exc:
                errors.append(str(exc))
    if errors:
        raise CpnasError("; ".join(errors))
    if not load:
        return None
    # every run is finished now: loaded here (each run's key is checked against its config)
    return [run_or_load(s, cfg, data_root=data_root, device=device) for s in specs]


TRAIN_MANY_KEYS = ("search", "genotype", "size", "loss", "precision", "dataset", "seed")


SEARCH_KEYS = ("strategy", "beta_p", "data_root")


def run_specs(runs: dict[str, dict[str, Any]], *, seed: int = 0) -> list[Any]:
    """:func:`train_many`'s run dicts as :class:`cpnas.runs.RunSpec` values (unknown keys are one error line)."""
    specs = []
    for name, spec in runs.items():
        unknown = sorted(set(spec) - set(TRAIN_MANY_KEYS))
        if unknown:
            raise CpnasError(f"run {name!r}: unknown key(s) {', '.join(unknown)}; use {', '.join(TRAIN_MANY_KEYS)}")
        spec = dict(spec)
        search = spec.pop("search", None)
        run_seed = spec.pop("seed", seed)
        if search is not None:
            unknown = sorted(set(search) - set(SEARCH_KEYS))
            if unknown or "strategy" not in search:
                raise CpnasError(f"run {name!r}: a search names its 'strategy' and may give "
                                 f"{', '.join(SEARCH_KEYS[1:])} (got {', '.join(sorted(search))})")
            root = search.get("data_root")
            search = SearchSpec(search["strategy"], seed=run_seed, beta_p=search.get("beta_p"),
                                data_root=None if root is None else str(root))
        specs.append(RunSpec(name, seed=run_seed, search=search, **spec))
    return specs


def train_many(runs: dict[str, dict[str, Any]], cfg: Config, *, workers: int = 1, seed: int = 0,
               data_root: str | os.PathLike | None = None, device: str = "auto", executor: str = "local",
               slurm: Any = None) -> dict[str, dict[str, Any]]:
    """Train (or load) several runs, ``workers`` at a time in one-thread processes (:func:`run_all`).

    ``runs`` maps a run name to its spec: either ``genotype`` (a :class:`Genotype`
    or a path) or ``search`` (``{"strategy": …, "beta_p": …, "data_root": …}``, a search of the
    default dataset (CIFAR-10) loaded or run with :func:`cpnas.search.search_or_load` first, in the
    same worker), plus any of ``size``, ``loss``, ``precision``, ``dataset``, ``seed``. Finished
    runs are loaded without starting a worker. Returns ``{name: metrics}`` in the order given.
    """
    specs = run_specs(runs, seed=seed)
    results = run_all(specs, cfg, workers=workers, data_root=data_root, device=device, executor=executor,
                      slurm=slurm, desc="trainings")
    return {spec.name: result.metrics for spec, result in zip(specs, results)}
