"""Run or load: :func:`run_or_load` and the one parallel runner :func:`run_all`, for the
:class:`~cpnas.runs.RunSpec` values every study lists, and :func:`run_searches` for the studies whose
runs are searches (and what a study computes from a finished search, in the same job).

A run's search (:data:`~cpnas.runs.stages.SEARCH`) is computed (or loaded) first, then its training
(:data:`~cpnas.runs.stages.TRAIN`); a finished stage is read from its folder after its cache key is
checked, never recomputed. ``train_many`` is the notebooks' form of :func:`run_all` (run names to dicts).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from cpnas.config import Config
from cpnas.errors import CpnasError
from cpnas.runs.spec import RunSpec, SearchSpec
from cpnas.runs.spec import unique as unique_specs
from cpnas.runs.stages import SEARCH, TRAIN, Stage, search_of


@dataclass
class RunResult:
    """A finished run: the training's metrics and, when it searched, its search."""

    metrics: dict[str, Any]
    search: Any = None  # the cpnas.search.SearchResult of its search, if it searched


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
    locked while it is computed (:class:`cpnas.io.run_lock`); runs another process holds go last in their round
    (:func:`held_last`). ``names`` labels the runs in the log (default: their names).
    Returns one :class:`RunResult` per spec, in order (``None`` with ``load=False``).
    """
    from cpnas.parallel import run_jobs

    labels: dict[int, str] = {}
    for s, name in zip(specs, names or ()):
        labels.setdefault(id(s), name)  # the first name of a spec listed twice
    todo = [s for s in unique_specs(specs, cfg.scale) if not s.is_done(cfg.scale)]
    searches: dict[Path, Any] = {}
    for s in todo:
        if s.search is not None and not SEARCH.is_finished(s.search.out(cfg.scale)):
            searches.setdefault(s.search.out(cfg.scale), s)
    errors: list[str] = []
    if searches:  # the searches first, each once: the trainings that need them are submitted after them
        searches = {s.search.out(cfg.scale): s for s in held_last(list(searches.values()),
                                                                    lambda s: s.search.out(cfg.scale))}
        try:
            run_jobs([(_search_job, {"spec": s, "cfg": cfg, "data_root": data_root, "device": device})
                      for s in searches.values()], workers=workers, desc="searches", executor=executor, slurm=slurm,
                     names=[f"search {s.search.strategy} seed {s.search.seed}" for s in searches.values()])
        except CpnasError as exc:  # the other runs go on; those of a failed search are not started
            errors.append(str(exc))
            todo = [s for s in todo if s.search is None or SEARCH.is_finished(s.search.out(cfg.scale))]
    later = [s for s in todo if s.waits_for_a_cell()]
    for batch in ([s for s in todo if s not in later], later):
        batch = held_last(batch, lambda s: s.out(cfg.scale))
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


def held_last(items: Sequence[Any], folder_of) -> list[Any]:
    """``items`` in order, but those whose run folder another live process holds (:func:`cpnas.io.lock_owner`)
    moved to the end: a worker takes the free runs first and reaches a held one (it then waits on the lock and
    reads the finished run) only when nothing else is left, instead of idling behind a process that may be
    slower (another ``make`` target, a niced job)."""
    import socket

    from cpnas.io import lock_owner

    me = (os.getpid(), socket.gethostname())

    def held(x: Any) -> bool:  # a lock of this process is its own; the same PID on another host is another's
        owner = lock_owner(folder_of(x))
        return owner is not None and (owner.get("pid"), owner.get("host")) != me

    flags = [held(x) for x in items]
    return [x for x, h in zip(items, flags) if not h] + [x for x, h in zip(items, flags) if h]


def _search_then(search: SearchSpec, cfg: Config, data_root: Any, device: str, then: Stage | None) -> None:
    """One worker job of :func:`run_searches`: the search, computed or loaded, then ``then`` on it (module level,
    so spawned workers can import it)."""
    from cpnas.io import run_lock

    folder = search.out(cfg.scale)
    with run_lock(folder):
        result = search_of(search, cfg, data_root=data_root, device=device)
        if then is not None and not then.is_finished(folder):
            then.compute(search, cfg, result, data_root=data_root, device=device)


def run_searches(searches: Sequence[SearchSpec], cfg: Config, *, then: Stage | None = None, workers: int = 1,
                 data_root: str | os.PathLike | None = None, device: str = "auto", executor: str = "local",
                 slurm: Any = None, desc: str = "searches", names: Sequence[str] | None = None) -> None:
    """The parallel runner of the studies whose runs are searches: every search of ``searches`` not finished
    yet (:data:`SEARCH`), ``workers`` at a time (:func:`cpnas.parallel.run_jobs`), each once.

    ``then`` is a stage a study computes from a finished search in the same job, while the search's
    checkpoint is in its folder (the search-ranking study scores the benchmark's cells with the
    trained supernet): its ``is_finished(folder)`` decides which searches are done, and its
    ``compute(search, cfg, result, data_root=…, device=…)`` runs after the search (computed or
    loaded). ``cfg`` is the base config; each spec's overrides go on top. ``names`` labels the
    searches in the log (default: strategy, β_P and seed).
    """
    from cpnas.parallel import run_jobs
    from cpnas.runs.spec import first_per_key

    finished = then.is_finished if then is not None else SEARCH.is_finished
    labels: dict[int, str] = {}
    for s, name in zip(searches, names or ()):
        labels.setdefault(id(s), name)  # the first name of a spec listed twice
    todo = held_last([s for s in first_per_key(searches, lambda s: s.out(cfg.scale)) if not finished(s.out(cfg.scale))],
                     lambda s: s.out(cfg.scale))
    if todo:
        run_jobs([(_search_then, {"search": s, "cfg": cfg, "data_root": data_root, "device": device, "then": then})
                  for s in todo], workers=workers, desc=desc, executor=executor, slurm=slurm,
                 names=[labels.get(id(s), f"{s.strategy} β={s.beta_p} seed {s.seed}") for s in todo])


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
    default dataset (CIFAR-10) loaded or run with :func:`cpnas.runs.search_or_load` first, in the
    same worker), plus any of ``size``, ``loss``, ``precision``, ``dataset``, ``seed``. Finished
    runs are loaded without starting a worker. Returns ``{name: metrics}`` in the order given.
    """
    specs = run_specs(runs, seed=seed)
    results = run_all(specs, cfg, workers=workers, data_root=data_root, device=device, executor=executor,
                      slurm=slurm, desc="trainings")
    return {spec.name: result.metrics for spec, result in zip(specs, results)}
