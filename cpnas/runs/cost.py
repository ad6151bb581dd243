"""What the finished runs recorded: their wall-clock summed per study (the budget of ``make reproduce``), and a
comparison of this checkout's runs with another's re-run (``python -m cpnas.runs``)."""

from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Any, Sequence

from cpnas.errors import CpnasError
from cpnas.paths import results_dir
from cpnas.runs.files import COST, GENOTYPE, METRICS, PARENT_DIR
from cpnas.runs.layout import study_dir
from cpnas.runs.spec import RunSpec


REPRODUCE_STUDIES: tuple[str | None, ...] = (None, "ablation")
"""The folders ``make reproduce`` computes in: the notebooks' (``results/<scale>/{search,train}``) and the
ablation's (notebooks 03 and 05). The proxy check and the recipe study have their own targets."""


RECORD_FILES = {"search": COST, "train": METRICS}
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


def recorded_thread_seconds(folder: Path, kind: str) -> float | None:
    """The compute a finished ``search`` or ``train`` folder used, in thread-seconds: the CPU seconds it
    recorded (``cpu_s``: all its threads, not the time it waited for a busy core), else its wall-clock
    (runs that predate the record); ``None`` while it is unfinished."""
    marker = Path(folder) / RECORD_FILES[kind]
    if not marker.is_file():
        return None
    return thread_seconds(_read_record(marker), marker)


def thread_seconds(record: dict[str, Any], path: Path | str) -> float | None:
    """A finished run's compute in thread-seconds from its record (read from ``path``): ``cpu_s`` where
    recorded, else ``wall_clock_s``; ``None`` when it has neither. A wrongly typed value is an error naming
    ``path``."""
    cpu = _number(record, "cpu_s", path, required=False)
    return cpu if cpu is not None else _number(record, "wall_clock_s", path, required=False)


def recorded_number(path: Path, key: str, *, required: bool = True) -> float | None:
    """``key`` of the JSON object in ``path`` as a float; a damaged or wrongly typed file is an error naming it."""
    return _number(_read_record(path), key, path, required=required)


def _read_record(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; a damaged file or another JSON type is one error naming it."""
    from cpnas.io import read_json

    record = read_json(path)  # truncated, binary, not JSON: one CpnasError naming the file
    if not isinstance(record, dict):
        raise CpnasError(f"{path}: not a run record (a JSON object), but a {type(record).__name__}; "
                         f"move the run folder away or run it again")
    return record


def _number(record: dict[str, Any], key: str, path: Path | str, *, required: bool) -> float | None:
    """``key`` of a run record read from ``path`` as a float (see :func:`recorded_number`)."""
    import math

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
                              ("train", f"train/*/seed*/{PARENT_DIR}/")):
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
        for f in sorted(root.glob("search/*/seed*/" + GENOTYPE)):
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

    from cpnas.presets import SCALES

    p = argparse.ArgumentParser(prog="python -m cpnas.runs",
                                description="Sum the wall-clock that the finished runs of make reproduce recorded.")
    p.add_argument("--scale", default="cpu", choices=SCALES)
    p.add_argument("--jobs", type=int, default=2, help="runs side by side, for the wall-clock estimate (default 2)")
    p.add_argument("--compare", metavar="OTHER", help="root of another checkout that re-ran the same runs: "
                                                      "compare its top-1s and genotypes with these")
    args = p.parse_args(argv)
    from cpnas.errors import exit_status
    from cpnas.parallel import check_environment

    def work() -> None:
        check_environment()
        print(compare_summary(compare(args.compare, args.scale)) if args.compare
              else cost_summary(args.scale, max(1, args.jobs)))

    return exit_status(p.prog, work)
