"""What recomputing every study from nothing costs, in one-thread hours: recorded, and estimated where runs remain.

Each finished run records its wall-clock and the CPU seconds its process used
(:func:`cpnas.runs.recorded_thread_seconds`: the CPU seconds where recorded, which do not
count time spent waiting for a busy core; the wall-clock for runs that predate that record).
A study's runs still to do are estimated at the median recorded time of its finished runs of
the same kind (for the strategy comparison: the ranking study's searches of the same strategy
at the budget in question, and the benchmark's trainings). The median, because a run paused or
starved by other work on a shared machine records a wall-clock far above its cost. These are
one-thread times on the machine that ran them; they are a plan, not a benchmark.

``python tools/gen_docs.py --write`` puts :func:`markdown` into the README.
"""

from __future__ import annotations

import statistics
from typing import Any

STUDIES: tuple[tuple[str | None, str], ...] = (
    (None, "notebooks 02 and 04 (searches, Table 2 trainings)"),
    ("proxy", "proxy check"),
    ("recipe", "recipe sweep"),
    ("cellbench", "cell benchmark"),
    ("ranking", "search ranking"),
    ("strategies", "strategy comparison"),
)
"""Every study folder under ``results/<scale>`` (``None``: the notebooks'), with its name in words."""


def _typical(xs: list[float]) -> float:
    """The estimate of one more run from the recorded ones: their median."""
    return statistics.median(xs) if xs else float("nan")


def left(scale: str, budget: str | None = None, tables_left: int | None = None) -> dict[str | None, dict[str, int]]:
    """Runs still to do per study and kind, for the studies whose plan is fixed in code.

    The strategy comparison counts its phases at their first seeds (:data:`cpnas.comparison.PHASES`)
    and Table 1's and the CP-loss study's trainings (``tables_left``, by default
    :func:`cpnas.comparison_tables.trainings_left`); the stopping rule may add seeds to it later.
    """
    from cpnas import cellbench, comparison, comparison_tables, ranking
    from cpnas.runs import GENOTYPE

    bench = [s for s in cellbench.specs(cellbench.all_cells(scale)) if not s.is_done(scale)]
    rank = [s for s in ranking.searches() if not ranking.is_done(scale, s)]
    out: dict[str | None, dict[str, Any]] = {"cellbench": {"train": len(bench)}, "ranking": {"search": len(rank)}}
    budget = budget or comparison_budget(scale)[0]
    planned = comparison.planned_searches({}, {}, budget)
    todo = {str(s.out(scale)): s for s in planned if not (s.out(scale) / GENOTYPE).is_file()}
    if tables_left is None:
        tables_left = comparison_tables.trainings_left(scale, budget)[0]
    out["strategies"] = {"search": len(todo), "train": len(todo) + tables_left}
    return out


def recorded_hours(scale: str) -> dict[tuple[str, str], list[float]]:
    """``(study, kind) → hours`` of every finished run below each study folder, at any depth (the proxy and
    the recipe sweep nest their trainings deeper, under stages of their own); ``notebooks`` for the notebooks' folders."""
    from cpnas import runs

    out: dict[tuple[str, str], list[float]] = {}
    for study, _ in STUDIES:
        root = runs.study_dir(scale, study)
        if not root.is_dir():
            continue
        stages = {"search": [root / "search"],
                  "train": [root / "train"] if study is None else
                  [d for d in root.iterdir() if d.is_dir() and d.name != "search"]}
        for kind, folders in stages.items():
            for folder in folders:
                for marker in sorted(folder.rglob(runs.RECORD_FILES[kind])) if folder.is_dir() else ():
                    seconds = runs.recorded_thread_seconds(marker.parent, kind)
                    if seconds is not None:
                        out.setdefault((study or "notebooks", kind), []).append(seconds / 3600)
    return out


LARGER = {"large": ("cpu", 4.0), "cpu": ("study", 4.0)}
"""A budget without a finished search of a strategy is estimated from a smaller one: ``budget → (smaller,
factor)``, the ratio of supernet training between them (:data:`cpnas.search_budgets.BUDGETS`)."""


def comparison_budget(scale: str) -> tuple[str, bool]:
    """``(budget, decided)``: the ranking's choice once the ranking is finished, else ``cpu``."""
    from cpnas.comparison import budget_state

    budget = budget_state(scale)["budget"]
    return budget or "cpu", budget is not None


def rows(scale: str, budget: str | None = None) -> list[dict[str, Any]]:
    """Per study: finished runs and their recorded hours, runs left and their estimated hours."""
    from cpnas import comparison_tables

    per_kind = recorded_hours(scale)
    if budget is None:
        budget, decided = comparison_budget(scale)
    else:
        decided = True
    tables, units = comparison_tables.trainings_left(scale, budget)
    todo = left(scale, budget, tables)
    search_h = _comparison_search_hours(scale, budget)
    out = []
    for study, words in STUDIES:
        key = study or "notebooks"
        done = {k: per_kind.get((key, k), []) for k in ("search", "train")}
        remaining = todo.get(study, {})
        est = 0.0
        for kind, n in remaining.items():
            if not n:
                continue
            if study == "strategies":
                small = _typical(per_kind.get(("cellbench", "train"), []))
                if kind == "train":  # the found cells' benchmark trainings, then Table 1 and the CP-loss study
                    est += (n - tables + units) * small
                    continue
                each = search_h
            elif study == "ranking":
                est += _ranking_left_hours(scale)
                continue
            else:
                each = _typical(done[kind])
            est += n * each
        row = {"study": words, "runs_done": sum(len(v) for v in done.values()),
               "hours_done": sum(sum(v) for v in done.values()),
               "runs_left": sum(remaining.values()) if study in todo else None, "hours_left": est}
        if study == "strategies":
            row["study"] += f" at the {budget} budget" + ("" if decided else " (if the ranking picks it)")
            row["rule_cap"] = stopping_rule_cap(scale, budget, per_kind=per_kind)
        out.append(row)
    return out


def search_hours(scale: str, budget: str) -> dict[str, float]:
    """Recorded hours of the ranking's search of each strategy at ``budget``; a strategy without one there is
    estimated from a smaller budget (:data:`LARGER`)."""
    from cpnas import ranking
    from cpnas import runs

    hours: dict[str, float] = {}
    for s in ranking.searches([budget]):
        seconds = runs.recorded_thread_seconds(s.out(scale), "search")
        if seconds is not None:
            hours[s.strategy] = seconds / 3600
    if budget in LARGER:
        smaller, factor = LARGER[budget]
        for strategy, h in search_hours(scale, smaller).items():
            hours.setdefault(strategy, factor * h)
    return hours


def _comparison_search_hours(scale: str, budget: str) -> float:
    """Typical hours of one strategy-comparison search at ``budget``, each strategy weighted as often as the
    comparison's phases run it (:data:`cpnas.comparison.PHASES`)."""
    from cpnas import comparison

    hours = search_hours(scale, budget)
    weights = [comparison.ARMS[a][0] for arms, _ in comparison.PHASES for a in arms]
    weights += ["cpnas"] * sum(len(b) for _, b in comparison.PHASES)
    return _typical([hours[s] for s in weights if s in hours])


def stopping_rule_cap(scale: str, budget: str, per_kind: dict[tuple[str, str], list[float]] | None = None,
                      ) -> tuple[int, float]:
    """``(runs, hours)``: the most the comparison's stopping rule can still add at ``budget`` — every search arm
    taken from its seeds so far (at least :data:`cpnas.comparison_plan.MIN_SEEDS`) to
    :data:`~cpnas.comparison_plan.MAX_SEEDS`, each seed one search and its found cell's training, at the
    estimates of :func:`rows` (``per_kind``: :func:`recorded_hours`, read again when not given). ``(0, 0.0)``
    once the rule asks for no more seeds (:func:`cpnas.comparison.seeds_to_add`): its family is judged."""
    from cpnas import comparison
    from cpnas.runs import GENOTYPE

    if not comparison.seeds_to_add(comparison.arm_values(scale, budget)[0]):
        return 0, 0.0
    hours = search_hours(scale, budget)
    per_kind = recorded_hours(scale) if per_kind is None else per_kind
    train = _typical(per_kind.get(("cellbench", "train"), []))
    runs, total = 0, 0.0
    for strategy, beta in (v for v in comparison.ARMS.values() if v[0] is not None):
        found = sum((f / GENOTYPE).is_file() for _, f in comparison.search_folders(scale, budget, strategy, beta))
        extra = comparison.MAX_SEEDS - max(comparison.MIN_SEEDS, found)
        runs += 2 * extra
        total += extra * (hours.get(strategy, float("nan")) + train)
    return runs, total


def _ranking_left_hours(scale: str) -> float:
    """Estimated hours of the ranking's unfinished searches, each at its strategy's and budget's estimate."""
    from cpnas import ranking

    return sum(search_hours(scale, s.budget).get(s.strategy, float("nan"))
               for s in ranking.searches() if not ranking.is_done(scale, s))


def markdown(scale: str = "cpu", budget: str | None = None) -> str:
    """:func:`rows` as a Markdown table with the total, for the README."""
    import math

    from cpnas.comparison_plan import MAX_SEEDS

    def h(x: float) -> str:
        return "–" if math.isnan(x) else f"{x:.1f}"

    lines = ["| study | runs finished | thread-hours recorded | runs left | thread-hours left (estimate) |",
             "|---|---:|---:|---:|---:|"]
    table = rows(scale, budget)
    for r in table:
        if r["runs_left"] is None:
            rest_cells = "– | –"
        else:
            rest_cells = f"{r['runs_left']} | {h(r['hours_left']) if r['runs_left'] else '0'}"
        lines.append(f"| {r['study']} | {r['runs_done']} | {h(r['hours_done'])} | {rest_cells} |")
    done = sum(r["hours_done"] for r in table)
    rest = sum(r["hours_left"] for r in table if r["runs_left"])
    cap_runs, cap_hours = next(r["rule_cap"] for r in table if "rule_cap" in r)
    lines.append(f"| **all** | {sum(r['runs_done'] for r in table)} | {h(done)} | "
                 f"{sum(r['runs_left'] or 0 for r in table)} | {h(rest)} |")
    lines += ["", f"Recomputing every study from nothing: about **{h(done + rest)} thread-hours** (one thread per "
                  f"run; two runs side by side halve the wall-clock). A dash: no runs planned (a finished "
                  f"study). A run's hours are the CPU time it recorded, or its wall-clock where it predates "
                  f"that record. Estimates use the median recorded time of the finished runs "
                  f"of the same kind, and for a search budget not run yet a smaller budget's time × its "
                  f"supernet-training ratio. " + (
                      f"The comparison's stopping rule may add seeds: at most {cap_runs} more runs (about "
                      f"{h(cap_hours)} thread-hours), if it takes every search arm to its cap of {MAX_SEEDS} seeds."
                      if cap_runs else
                      "The comparison's stopping rule asks for no more seeds: its primary contrasts are judged.")]
    return "\n".join(lines)
