"""One run layer, its data half: what a run is (:class:`RunSpec`) and where every run lives.

Every study — notebooks 02-05, the ablation (:mod:`cpnas.ablation`), the proxy check
(:mod:`cpnas.proxy`) and the recipe study (:mod:`cpnas.recipe`) — describes its runs as
:class:`RunSpec` values (a search, :class:`SearchSpec`, or a fixed genotype, then one
training) and hands them to :func:`cpnas.evaluation.run_or_load` or
:func:`cpnas.evaluation.run_all`, the one run-or-load and the one parallel runner. This
module imports neither search nor training, so both can ask it where their runs go.

* The cache key of a training is :func:`cpnas.evaluation.run_key` (checked by
  :func:`cpnas.evaluation.train_or_load`); that of a search is the search and data
  sections of its config (checked by :func:`cpnas.search.search_or_load`).
* The layout of ``results/<scale>/`` is computed here and nowhere else::

      search/<search name>/seed<N>          searches of notebooks 02-04, the proxy and the recipe study
      train/<name>/seed<N>                  trainings of notebooks 03-04
      ablation/search/<search name>/seed<N> the ablation's searches (notebook 05)
      ablation/train/<name>/seed<N>         the ablation's trainings
      proxy/train/<cell>/<budget>/seed<N>   the proxy check's trainings
      recipe/{sweep,full}/<name>/seed<N>    the recipe study's trainings
      submitit/                             logs of runs sent through submitit

  A search name is the strategy, ``-beta<β>`` when β_P is given, prefixed by the
  dataset when it is not :data:`cpnas.data.DEFAULT_DATASET`.
"""

from __future__ import annotations

import logging
import os
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from cpnas.data.registry import DEFAULT_DATASET
from cpnas.errors import CpnasError
from cpnas.paths import results_dir

if TYPE_CHECKING:
    from cpnas.config import Config
    from cpnas.genotype import Genotype

log = logging.getLogger(__name__)

Overrides = tuple[tuple[str, Any], ...]
"""Dotted config overrides as a sorted tuple of pairs (a frozen spec holds no dict)."""

METRICS = "metrics.json"
"""Written last by a training (:func:`cpnas.evaluation.train_genotype`): its presence marks the run finished."""

GENOTYPE = "genotype.json"
"""The cell a search found (:meth:`cpnas.genotype.Genotype.save`)."""

PARENT_DIR = "parent"
"""The sub-folder of a training holding the 32-bit Parent it trained first (the ``H = Parent`` kernel term)."""


# --------------------------------------------------------------------------- layout


def study_dir(scale: str, study: str | None = None) -> Path:
    """``results/<scale>`` (the notebooks' runs) or ``results/<scale>/<study>`` (a study's own runs)."""
    root = results_dir(scale)
    return root if study is None else root / study


def search_name(strategy: str, beta_p: float | None = None, dataset: str = DEFAULT_DATASET,
                variant: str | None = None) -> str:
    """``<strategy>[-beta<β>][-<variant>]``, prefixed by ``<dataset>-`` off the default dataset."""
    name = strategy if beta_p is None else f"{strategy}-beta{beta_p:g}"
    if variant:
        name = f"{name}-{variant}"
    return name if dataset == DEFAULT_DATASET else f"{dataset}-{name}"


def search_dir(scale: str, strategy: str, seed: int, beta_p: float | None = None,
               dataset: str = DEFAULT_DATASET, *, study: str | None = None, variant: str | None = None) -> Path:
    """``results/<scale>[/<study>]/search/<search name>/seed<N>``."""
    return study_dir(scale, study) / "search" / search_name(strategy, beta_p, dataset, variant) / f"seed{seed}"


def stage_dir(scale: str, study: str | None = None, stage: str = "train") -> Path:
    """The folder holding one folder per training of a stage: ``results/<scale>[/<study>]/<stage>``."""
    return study_dir(scale, study) / stage


def train_dir(scale: str, name: str, seed: int, *, study: str | None = None, stage: str = "train") -> Path:
    """``results/<scale>[/<study>]/<stage>/<name>/seed<N>`` (``name`` may hold a ``/``: the proxy's cell/budget)."""
    return stage_dir(scale, study, stage) / name / f"seed{seed}"


def submitit_dir(scale: str) -> Path:
    """``results/<scale>/submitit``: logs of the runs sent through submitit (:mod:`cpnas.parallel`)."""
    return results_dir(scale) / "submitit"


# --------------------------------------------------------------------------- specs


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
    ``seed``, on the base config given to :func:`cpnas.evaluation.run_or_load` plus ``overrides``. Its
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


# --------------------------------------------------------------------------- cost

REPRODUCE_STUDIES: tuple[str | None, ...] = (None, "ablation")
"""The folders ``make reproduce`` computes in: the notebooks' (``results/<scale>/{search,train}``) and the
ablation's (notebooks 03 and 05). The proxy check and the recipe study have their own targets."""


RECORD_FILES = {"search": "cost.json", "train": METRICS}
"""The file in which a finished run folder of each kind records its wall-clock (``wall_clock_s``)."""


def require_finished(found, what: str, scale: str):
    """``found`` (finished runs' rows or metrics) as it is, or one clear error when it is empty.

    For the notebooks run with ``CPNAS_COMPUTE=0`` (show the finished runs, compute nothing)
    before any run of ``what`` has finished at ``scale``: without it the first table of the
    empty rows fails later with a bare ``KeyError``.
    """
    if not found:
        raise CpnasError(f"no finished {what} at scale {scale!r} under {results_dir(scale)}: CPNAS_COMPUTE=0 "
                         f"shows finished runs only; run with CPNAS_COMPUTE=1 (the default) to compute them, "
                         f"or `make reproduce SCALE={scale}`")
    return found


def recorded_seconds(folder: Path, kind: str) -> float | None:
    """The wall-clock (s) a finished ``search`` or ``train`` folder recorded; ``None`` while it is unfinished."""
    marker = Path(folder) / RECORD_FILES[kind]
    if not marker.is_file():
        return None
    return recorded_number(marker, "wall_clock_s", required=False)


def recorded_number(path: Path, key: str, *, required: bool = True) -> float | None:
    """``key`` of the JSON object in ``path`` as a float; a damaged or wrongly typed file is an error naming it."""
    import math

    from cpnas.io import read_json

    record = read_json(path)  # truncated, binary, not JSON: one CpnasError naming the file
    if not isinstance(record, dict):
        raise CpnasError(f"{path}: not a run record (a JSON object), but a {type(record).__name__}; "
                         f"move the run folder away or run it again")
    value = record.get(key)
    if value is None:
        if required:
            raise CpnasError(f"{path}: no {key!r}; not the record of a finished run, move it away or run it again")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CpnasError(f"{path}: {key!r} is {value!r}, not a finite number; move the run folder away or "
                         f"run it again")
    return float(value)


def recorded_cost(scale: str, studies: Sequence[str | None] = REPRODUCE_STUDIES) -> list[dict[str, Any]]:
    """The wall-clock every finished run of ``studies`` recorded: one row per search (``cost.json``) and per
    training (``metrics.json``, a trained Parent's included), with its folder, kind and seconds.

    Summed, these are what ``make reproduce`` costs on one thread per run (the studies' budget is
    measured this way when it spans sittings); data loading and process start-up are not in them.
    """
    rows = []
    for study in studies:
        root = study_dir(scale, study)
        for kind, pattern in (("search", "search/*/seed*/"), ("train", "train/*/seed*/"),
                              ("train", "train/*/seed*/parent/")):
            for f in sorted(root.glob(pattern + RECORD_FILES[kind])):
                seconds = recorded_seconds(f.parent, kind)
                if seconds is not None:
                    rows.append({"study": study or "notebooks", "kind": kind,
                                 "run": str(f.parent.relative_to(root)), "seconds": seconds})
    return rows


def cost_summary(scale: str, jobs: int = 2) -> str:
    """:func:`recorded_cost` in words: hours of run time per folder and kind, and the wall-clock at ``jobs``."""
    rows = recorded_cost(scale)
    if not rows:
        return f"no finished runs under {study_dir(scale)}"
    groups: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        groups.setdefault((r["study"], r["kind"]), []).append(r["seconds"])
    lines = [f"{study:>9} {kind:<6} {len(s):4d} runs  {sum(s) / 3600:6.2f} h  ({sum(s) / 60 / len(s):5.1f} min each)"
             for (study, kind), s in sorted(groups.items())]
    total = sum(r["seconds"] for r in rows) / 3600
    lines.append(f"total: {len(rows)} runs, {total:.2f} h of one-thread run time; {jobs} at a time ≈ "
                 f"{total / jobs:.2f} h of wall-clock (start-up and data loading not counted)")
    return "\n".join(lines)


def study_cost(specs: Sequence[RunSpec], scale: str) -> dict[str, Any]:
    """The wall-clock the runs ``specs`` of a study recorded: each search and training folder counted once.

    A study's searches are shared between rows (Table 1's CP-NAS and BNAS† searches are Fig. 6
    (right)'s), so the sum is over unique folders: ``cost.json`` of each finished search,
    ``metrics.json`` of each finished training. Returns the seconds per kind, the folders
    counted and those not finished yet, for the studies' time budget (one thread per run;
    process start-up and data loading are not in it). A training's 32-bit Parent (the
    ``H = Parent`` loss variant trains one first, in ``<folder>/parent``) is counted as a training.

    ``projected_s`` adds, for each unfinished folder, the median recorded time of the finished
    folders of its kind (a search: its strategy; a training: its size and whether it trains a
    Parent), or of all finished folders of its kind when none of its own is finished: an
    estimate of the whole study from the runs so far, ``None`` while nothing is finished.
    """
    folders: dict[Path, tuple[str, tuple]] = {}
    for spec in specs:
        if spec.search is not None:
            folders.setdefault(spec.search.out(scale), ("search", (spec.search.strategy,)))
        parent = dict(spec.overrides).get("loss.kernel_source") == "parent"
        folders.setdefault(spec.out(scale), ("train", (spec.size, parent)))
    out: dict[str, Any] = {"search_s": 0.0, "train_s": 0.0, "searches": 0, "trainings": 0, "missing": []}
    seen: dict[tuple, list[float]] = {}
    for folder, (kind, key) in folders.items():
        seconds = recorded_seconds(folder, kind)
        if seconds is None:
            out["missing"].append((str(folder), kind, key))
            continue
        parent = recorded_seconds(folder / PARENT_DIR, "train") if kind == "train" else None
        if parent is not None:  # the 32-bit Parent the H = Parent loss variant trains first
            seconds += parent
            out["trainings"] += 1
        out[f"{kind}_s"] += seconds
        out["searches" if kind == "search" else "trainings"] += 1
        seen.setdefault((kind, key), []).append(seconds)
        seen.setdefault((kind,), []).append(seconds)
    out["total_s"] = out["search_s"] + out["train_s"]
    guesses = [seen.get((kind, key)) or seen.get((kind,)) for _, kind, key in out["missing"]]
    out["projected_s"] = (None if any(g is None for g in guesses)
                          else out["total_s"] + sum(statistics.median(g) for g in guesses))
    out["missing"] = [m[0] for m in out["missing"]]
    return out


def cost_words(cost: dict[str, Any], jobs: int = 2) -> str:
    """:func:`study_cost` in one sentence, with the wall-clock of ``jobs`` runs side by side (sum / jobs: a lower
    bound, since a training waits for its search)."""
    text = (f"{cost['searches']} searches {cost['search_s'] / 60:.1f} min + {cost['trainings']} trainings "
            f"{cost['train_s'] / 60:.1f} min = {cost['total_s'] / 60:.1f} min of one-thread run time, "
            f"≈ {cost['total_s'] / 60 / jobs:.1f} min of wall-clock {jobs} at a time")
    if cost["missing"]:
        text += f"; {len(cost['missing'])} run(s) not finished, not counted"
        if cost["projected_s"] is not None:
            text += (f" (projected from the finished runs of their kind: {cost['projected_s'] / 60:.0f} min in all, "
                     f"≈ {cost['projected_s'] / 3600 / jobs:.1f} h {jobs} at a time)")
    return text


def compare(other: str | os.PathLike, scale: str,
            studies: Sequence[str | None] = REPRODUCE_STUDIES) -> list[dict[str, Any]]:
    """Every finished run found both here and in another checkout ``other`` (a re-run of the same
    studies, e.g. a fresh clone's ``make reproduce-table1``): one row per training with both top-1s and
    their difference, one per search with whether both found the same genotype.

    A re-run need not find the same cells: a search amplifies any last-bit difference (kernel forms
    are timed and chosen per machine, :mod:`cpnas.dispatch`), so what a re-run can confirm is that
    the trained accuracies agree within the seed-to-seed noise (:func:`compare_summary`).
    """
    from cpnas.io import read_json

    other_results = Path(other) / "results" / scale
    if not other_results.is_dir():
        raise CpnasError(f"no results/{scale} under {other}: pass the root of another checkout that ran "
                         f"the same studies")
    rows = []
    for study in studies:
        root = study_dir(scale, study)
        twin = other_results / root.relative_to(results_dir(scale))
        for f in sorted(root.glob("train/*/seed*/" + METRICS)):
            g = twin / f.relative_to(root)
            if g.is_file():
                a, b = (recorded_number(x, "top1") for x in (f, g))
                rows.append({"kind": "train", "run": str(f.parent.relative_to(results_dir(scale))),
                             "top1": a, "other top1": b, "difference": b - a})
        for f in sorted(root.glob("search/*/seed*/genotype.json")):
            g = twin / f.relative_to(root)
            if g.is_file():
                rows.append({"kind": "search", "run": str(f.parent.relative_to(results_dir(scale))),
                             "same genotype": read_json(f) == read_json(g)})
    return rows


def compare_summary(rows: Sequence[dict[str, Any]]) -> str:
    """:func:`compare` in words: the per-run differences' mean ± std, and how many searches agree."""
    trains = [r for r in rows if r["kind"] == "train"]
    searches = [r for r in rows if r["kind"] == "search"]
    if not rows:
        return "no finished run is in both checkouts"
    lines = [f"{r['run']:<44} {r['top1']:6.2f} -> {r['other top1']:6.2f}  ({r['difference']:+.2f})"
             for r in trains]
    lines += [f"{r['run']:<44} {'same' if r['same genotype'] else 'another'} genotype" for r in searches]
    if len(trains) > 1:
        d = [r["difference"] for r in trains]
        lines.append(f"top-1, other minus this: {statistics.fmean(d):+.2f} ± {statistics.stdev(d):.2f} points "
                     f"(mean ± std over {len(d)} runs; mean |difference| {statistics.fmean(map(abs, d)):.2f})")
    if searches:
        lines.append(f"searches with the same genotype: {sum(r['same genotype'] for r in searches)} of "
                     f"{len(searches)}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cpnas.runs [--scale S] [--jobs N] [--compare OTHER]``: the recorded cost of ``make
    reproduce``'s finished runs, or (``--compare``) this checkout's runs against another's re-run."""
    import argparse

    from cpnas.config import SCALES

    p = argparse.ArgumentParser(prog="python -m cpnas.runs",
                                description="Sum the wall-clock that the finished runs of make reproduce recorded.")
    p.add_argument("--scale", default="cpu", choices=SCALES)
    p.add_argument("--jobs", type=int, default=2, help="runs side by side, for the wall-clock estimate (default 2)")
    p.add_argument("--compare", metavar="OTHER", help="root of another checkout that re-ran the same runs: "
                                                      "compare its top-1s and genotypes with these")
    args = p.parse_args(argv)
    try:
        from cpnas.parallel import check_environment

        check_environment()
        print(compare_summary(compare(args.compare, args.scale)) if args.compare
              else cost_summary(args.scale, max(1, args.jobs)))
    except CpnasError as e:
        print(f"{p.prog}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
