"""Does a search rank cells? Each strategy's scores against the cell benchmark, at three search budgets.

A search only decides something if the information it chooses by orders architectures
as training them does. Here every trained supernet scores the fixed cells of the
benchmark (:mod:`cpnas.cellbench`: the uniform draws and the two published cells) with
what the search learned (:meth:`~cpnas.strategy_base.Strategy.score_cells`):

* CP-NAS (β_P = 2) and BNAS† (β_P = 0): the one-shot Child accuracy ``child``, the
  Parent's ``parent``, Eq. 1's ``z_beta2`` and ``z_beta0`` (scored as the search scores
  a draw: BN re-estimated on the calibration batches, eval mode, the first
  :data:`SCORE_IMAGES` images of the score split), and ``lifetime_zbar``, the mean over
  the cell's edges of the lifetime z̄ of its op there (the information Alg. 1 chose by);
* PC-DARTS: ``alpha_loglik``, the log-weight the relaxed architecture gives the cell;
* random search with weight sharing (:mod:`cpnas.randomsearch`): the one-shot ``child``.

Kendall τ-b against the benchmark's top-1 (the mean over a cell's training seeds), with a 95 %
percentile-bootstrap interval over cells (:func:`cpnas.stats.kendall`), per search and score.

The budgets (:data:`BUDGETS`, size fields of the search only) differ 4× in supernet
training (images × epochs per supernet): ``study`` (the former ablation searches),
``cpu`` (02's search, the ``cpu`` preset) and ``large`` (T = 2, twice the images).

**The rule that picks the budget of the strategy comparison**, fixed before any ranking run
(:func:`choose_budget`): the cheapest budget, by the mean recorded minutes of its CP-NAS searches, at which
the CP-NAS searches' Eq. 1 score ``z_beta2`` ranks the benchmark with a τ whose 95 % interval lies above 0
(:data:`RULE_STRATEGY`, :data:`RULE_SCORE`; with several seeds, τ of their mean score). If no budget does,
the answer is that no budget ranks; the comparison then runs at the budget with the highest τ, and every
verdict says the search was not shown to rank. The comparison applies the rule once, when the study is
complete, and records its answer (:func:`cpnas.comparison.chosen_budget`).

``python -m cpnas.ranking --jobs 2`` runs what is missing (searches of
``results/<scale>/ranking/search/<strategy>-<budget>/seed<N>``, each followed in the
same job by the scoring, :data:`SCORING`, while its checkpoint is there:
:func:`cpnas.runs.run_searches`) and writes
``tables/search_ranking.{csv,md}`` and ``figures/search_ranking.png``.
"""

from __future__ import annotations

import logging
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from cpnas.comparison_plan import rule_text
from cpnas.search_budgets import BUDGETS
from cpnas.runs import SearchSpec, Stage, apply, overrides, run_searches, study_dir
from cpnas.config import Config, get_config
from cpnas.data import DEFAULT_DATASET
from cpnas.errors import CpnasError
from cpnas.io import read_json, write_json

log = logging.getLogger(__name__)

STUDY = "ranking"
"""The study's folder in the results layout (:mod:`cpnas.runs`)."""

SCORES_FILE = "cell_scores.json"
"""Written into a ranking search's folder after its search: every benchmark cell's scores."""

SCORE_IMAGES = 2500
"""Images of the score split a one-shot score of a benchmark cell reads (the search itself scores on all)."""

STRATEGIES: tuple[tuple[str, float | None], ...] = (("cpnas", 2.0), ("bnas", None), ("pcdarts", None), ("rs", None))
"""``(strategy, β_P)`` of the searches ranked at every budget."""

RULE_STRATEGY, RULE_SCORE = "cpnas", "z_beta2"
"""The search and score :func:`choose_budget` reads."""


@dataclass(frozen=True)
class RankSearch:
    """One search of the study: strategy, β_P, budget, seed."""

    strategy: str
    budget: str
    seed: int = 0
    beta_p: float | None = None

    @property
    def spec(self) -> SearchSpec:
        if self.budget not in BUDGETS:
            raise CpnasError(f"unknown budget {self.budget!r}; choose one of {', '.join(BUDGETS)}")
        return SearchSpec(self.strategy, seed=self.seed, beta_p=self.beta_p, dataset=DEFAULT_DATASET,
                          overrides=overrides(BUDGETS[self.budget]), study=STUDY, variant=self.budget)

    def out(self, scale: str) -> Path:
        return self.spec.out(scale)

    @property
    def label(self) -> str:
        return f"{self.strategy} {self.budget} seed {self.seed}"


def searches(budgets: Sequence[str] = tuple(BUDGETS), seeds: Sequence[int] = (0,),
             strategies: Sequence[tuple[str, float | None]] = STRATEGIES) -> list[RankSearch]:
    """Budget-major, cheapest first: every strategy at every seed."""
    return [RankSearch(s, b, seed, beta) for b in budgets for seed in seeds for s, beta in strategies]


def search_config(scale: str, search: RankSearch) -> Config:
    return apply(get_config(scale), search.spec.overrides)


def _folder(search: SearchSpec, scale: str) -> Path:
    return search.out(scale)


def _scores_done(folder: Path) -> bool:
    return (Path(folder) / SCORES_FILE).is_file()


def _load_scores(folder: Path) -> dict[str, Any]:
    return read_json(Path(folder) / SCORES_FILE)


def _search_key(search: SearchSpec, cfg: Config) -> dict[str, Any]:
    """The scoring's cache key is its search's (:data:`cpnas.runs.SEARCH`): the scores are of that search."""
    from cpnas.runs import SEARCH

    return SEARCH.key(search, cfg)


def scored_cells(scale: str):
    """The benchmark cells every ranking search scores: the fixed ones (the first six at ``smoke``)."""
    from cpnas.cellbench import fixed_cells

    return fixed_cells() if scale != "smoke" else fixed_cells()[:6]


def score_benchmark(search: SearchSpec, cfg: Config, result: Any, *, data_root: str | None = None,
                    device: str = "auto") -> dict[str, Any]:
    """Score the benchmark's fixed cells with a finished search's trained state and write :data:`SCORES_FILE`.

    ``result`` is the search's :class:`~cpnas.search.SearchResult`; ``cfg`` the base config
    (the search's overrides go on top). Runs in the job of the search
    (:func:`cpnas.runs.run_searches`), while its checkpoint is in its folder.
    """
    import time

    from cpnas.search import score_cells

    out = search.out(cfg.scale)
    cells = scored_cells(cfg.scale)
    start = time.perf_counter()
    scores = score_cells(search.strategy, apply(cfg, search.overrides), out, [c.genotype for c in cells],
                         seed=search.seed, beta_p=search.beta_p, data_root=data_root, device=device,
                         max_images=SCORE_IMAGES)
    payload = {"strategy": search.strategy, "budget": search.variant, "seed": search.seed,
               "search_minutes": result.cost["wall_clock_s"] / 60, "score_images": SCORE_IMAGES,
               "scoring_minutes": (time.perf_counter() - start) / 60,
               "genotype": result.genotype.to_dict(),
               "cells": {c.name: s for c, s in zip(cells, scores)}}
    write_json(out / SCORES_FILE, payload)
    return payload


SCORING = Stage("scoring", _folder, _search_key, _scores_done, _load_scores, score_benchmark)
"""The study's stage after each search (:func:`cpnas.runs.run_searches`): the benchmark's cells scored with the
trained supernet, :data:`SCORES_FILE` in the search's folder; a ranking search is finished when it exists."""


def is_done(scale: str, search: RankSearch) -> bool:
    """Whether ``search`` has searched and scored the benchmark (:data:`SCORING`)."""
    return SCORING.is_finished(search.out(scale))


# --------------------------------------------------------------------------- analysis


def finished(scale: str) -> list[dict[str, Any]]:
    """The scores of every finished ranking search under ``results/<scale>/ranking``."""
    from cpnas.alphas import alpha_movement

    root = study_dir(scale, STUDY) / "search"
    runs = []
    for path in sorted(root.glob(f"*/seed*/{SCORES_FILE}")):
        run = read_json(path)
        alphas = path.parent / "alphas.json"  # PC-DARTS: how far softmax(α) moved from uniform
        moved = alpha_movement(read_json(alphas)["alphas"]) if alphas.is_file() else {}
        run["alpha_entropy_ratio"] = moved.get("alpha_entropy_ratio")
        run["alpha_max_shift"] = moved.get("alpha_max_shift")
        runs.append(run)
    return runs


def ground_truth(scale: str) -> dict[str, float]:
    """The benchmark's top-1 per cell: the mean over its finished training seeds."""
    from cpnas.cellbench import frame

    df = frame(scale)
    if df.empty:
        return {}
    return df.groupby("architecture")["top1"].mean().to_dict()


def _scores(cell_scores: dict[str, float]) -> list[str]:
    """The score names of a cell that mean something: Eq. 1 at β_P = 2 needs a trained Parent."""
    parent = cell_scores.get("parent")
    no_parent = parent is None or not math.isfinite(parent)
    return [k for k in cell_scores if not (no_parent and k in ("parent", "z_beta2"))]


def rank_rows(scale: str, runs: Sequence[dict[str, Any]] | None = None,
              truth: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """One row per (finished search, score): τ-b of the score against the benchmark's top-1, with its CI.

    Cells are those scored by the search that have a ground truth. Non-finite scores
    (BNAS† has no Parent) give no row.
    """
    from cpnas.stats import kendall

    runs = finished(scale) if runs is None else runs
    truth = ground_truth(scale) if truth is None else truth
    rows = []
    for run in runs:
        names = [n for n in run["cells"] if n in truth]
        if not names:
            continue
        for score in _scores(run["cells"][names[0]]):
            xs = [run["cells"][n][score] for n in names]
            if not all(math.isfinite(x) for x in xs):
                continue
            k = kendall(xs, [truth[n] for n in names])
            rows.append({"strategy": run["strategy"], "score": score, "budget": run["budget"], "seed": run["seed"],
                         "search_minutes": run["search_minutes"], "n_cells": k["n"], "tau": k["tau"],
                         "ci_low": k["ci_low"], "ci_high": k["ci_high"], "p": k["p"],
                         "alpha_entropy_ratio": run.get("alpha_entropy_ratio"),
                         "alpha_max_shift": run.get("alpha_max_shift")})
    return rows


def pooled_rows(scale: str, runs: Sequence[dict[str, Any]] | None = None,
                truth: dict[str, float] | None = None, *,
                only: tuple[str, str] | None = None) -> list[dict[str, Any]]:
    """Per (strategy, budget, score): τ of the score averaged over the searches' seeds (the rule's reading);
    ``only=(strategy, score)`` computes that one (the rule's, :func:`choose_budget`)."""
    from cpnas.stats import kendall

    runs = finished(scale) if runs is None else runs
    truth = ground_truth(scale) if truth is None else truth
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["strategy"], run["budget"]), []).append(run)
    rows = []
    for (strategy, budget), group in groups.items():
        names = [n for n in group[0]["cells"] if n in truth and all(n in g["cells"] for g in group)]
        if not names or (only and strategy != only[0]):
            continue
        for score in _scores(group[0]["cells"][names[0]]):
            if only and score != only[1]:
                continue
            xs = [statistics.fmean(g["cells"][n][score] for g in group) for n in names]
            if not all(math.isfinite(x) for x in xs):
                continue
            k = kendall(xs, [truth[n] for n in names])
            rows.append({"strategy": strategy, "score": score, "budget": budget, "seeds": len(group),
                         "search_minutes": statistics.fmean(g["search_minutes"] for g in group),
                         "n_cells": k["n"], "tau": k["tau"], "ci_low": k["ci_low"], "ci_high": k["ci_high"],
                         "p": k["p"]})
    return rows


def choose_budget(pooled: Sequence[dict[str, Any]], *, strategy: str = RULE_STRATEGY,
                  score: str = RULE_SCORE) -> dict[str, Any]:
    """The module docstring's rule: ``{"budget", "ranks", "reason"}``.

    ``ranks`` is False when no budget's interval lies above 0; ``budget`` is then the
    one with the highest τ (``None`` without any finished search).
    """
    rows = sorted((r for r in pooled if r["strategy"] == strategy and r["score"] == score),
                  key=lambda r: r["search_minutes"])
    for r in rows:
        if r["ci_low"] is not None and r["ci_low"] > 0:
            return {"budget": r["budget"], "ranks": True,
                    "reason": f"cheapest budget whose {strategy} {score} τ interval lies above 0 "
                              f"(τ = {r['tau']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}], {r['n_cells']} cells)"}
    if not rows:
        return {"budget": None, "ranks": False, "reason": f"no finished {strategy} ranking search"}
    best = max(rows, key=lambda r: r["tau"] if r["tau"] is not None else -2)
    return {"budget": best["budget"], "ranks": False,
            "reason": f"no budget's {strategy} {score} τ interval lies above 0; highest τ at {best['budget']} "
                      f"(τ = {best['tau']:.2f})"}


def table(scale: str):
    """:func:`rank_rows` as a DataFrame, budgets cheapest first."""
    import pandas as pd

    df = pd.DataFrame(rank_rows(scale), columns=["strategy", "score", "budget", "seed", "search_minutes", "n_cells",
                                                 "tau", "ci_low", "ci_high", "p", "alpha_entropy_ratio",
                                                 "alpha_max_shift"])
    order = {b: i for i, b in enumerate(BUDGETS)}
    return df.sort_values(["budget", "strategy", "score", "seed"], key=lambda s: s.map(order) if s.name == "budget"
                          else s).reset_index(drop=True)


def write_table(scale: str) -> str:
    """``tables[/<scale>]/search_ranking.{csv,md}`` (:func:`cpnas.paths.artifact_dir`); returns the Markdown."""
    from cpnas.cellbench import edge_rule_table
    from cpnas.io import write_text
    from cpnas.paths import artifact_dir

    df = table(scale)
    out = artifact_dir("tables", scale)
    write_text(out / "search_ranking.csv", df.to_csv(index=False, float_format="%.4f"))
    choice = choose_budget(pooled_rows(scale, only=(RULE_STRATEGY, RULE_SCORE)))
    md = (f"Search ranking at scale `{scale}` (`python -m cpnas.ranking`): Kendall τ-b of each search's scores "
          f"of the benchmark cells against their trained top-1 (`tables/cell_benchmark.csv`), with a 95 % "
          f"percentile-bootstrap interval over cells. `alpha_entropy_ratio` (PC-DARTS): the mean entropy of "
          f"softmax(α) over edges as a fraction of the uniform's log 8 (1 = α never moved); `alpha_max_shift`: "
          f"the largest |softmax(α) − 1/8| over edges and ops (0 = never moved; the entropy hides small moves).\n\n"
          + (df.to_markdown(index=False, floatfmt=".3f", missingval="–") if not df.empty
             else "(no finished ranking search)")
          + f"\n\nBudget rule: {rule_text(scale, choice) or choice['reason']}.\n")
    edges = edge_rule_table(scale)
    if not edges.empty:
        md += ("\nShare of kept edges that start at the cell inputs (nodes 0-1), per strategy and final-cell rule, "
               "over every searched cell of this scale (a uniform cell's expectation is 0.64):\n\n"
               + edges.to_markdown(index=False, floatfmt=".3f") + "\n")
    write_text(out / "search_ranking.md", md)
    return md


GLANCE_SCORES: tuple[tuple[str, str], ...] = (("cpnas", "z_beta2"), ("cpnas", "child"), ("bnas", "z_beta0"),
                                               ("pcdarts", "alpha_loglik"), ("rs", "child"))
"""The score of each strategy the README's summary shows: what the strategy chooses by (and CP-NAS's Child)."""


def glance(scale: str) -> str:
    """A short Markdown summary: τ [95 % CI] of each strategy's own score per budget (seeds pooled), n cells, and
    the budget rule's answer."""
    pooled = pooled_rows(scale)
    if not pooled:
        return "No ranking search has finished yet (`python -m cpnas.ranking --jobs 2`)."
    cell = {(r["strategy"], r["score"], r["budget"]): r for r in pooled}
    budgets = [b for b in BUDGETS if any(r["budget"] == b for r in pooled)]
    lines = ["| strategy: score | " + " | ".join(f"{b} budget" for b in budgets) + " |",
             "|---|" + "---|" * len(budgets)]
    for strategy, score in GLANCE_SCORES:
        row = []
        for b in budgets:
            r = cell.get((strategy, score, b))
            row.append("–" if r is None or r["tau"] is None else
                       f"{r['tau']:+.2f} [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}], {r['n_cells']} cells, "
                       f"{r['search_minutes']:.0f} min")
        lines.append(f"| {strategy}: `{score}` | " + " | ".join(row) + " |")
    choice = choose_budget(pooled)
    todo = [s for s in searches() if not is_done(scale, s)]
    truth, cells = ground_truth(scale), scored_cells(scale)
    untrained = sum(c.name not in truth for c in cells)
    applied = rule_text(scale, choice) or choice["reason"]
    rule = (f"Budget rule (fixed before the runs): {applied}." if not todo and not untrained else
            f"Budget rule (fixed before the runs): not applied yet, {len(todo)} of {len(searches())} ranking "
            f"searches and {untrained} of the benchmark's {len(cells)} fixed cells are unfinished; on the "
            f"finished part it would read: {choice['reason']}.")
    return ("Kendall τ-b of each search's own score of the benchmark cells against their trained top-1 "
            "[95 % bootstrap CI over cells] (`tables/search_ranking.md` has every score and seed):\n\n"
            + "\n".join(lines) + f"\n\n{rule}")


def main(argv: list[str] | None = None) -> int:
    import argparse

    from cpnas.arguments import run_study

    p = argparse.ArgumentParser(prog="python -m cpnas.ranking", description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", default="cpu", choices=("cpu", "smoke"))
    p.add_argument("--jobs", type=int, default=1, help="one-thread processes side by side (default 1)")
    p.add_argument("--data", default=None, metavar="PATH", help="CIFAR-10 folder (default: $CPNAS_CIFAR10)")
    p.add_argument("--budgets", default=",".join(BUDGETS), help=f"comma-separated, of {', '.join(BUDGETS)}")
    p.add_argument("--seeds", default="0", help="comma-separated search seeds (default 0)")
    p.add_argument("--strategies", default=",".join(s for s, _ in STRATEGIES),
                   help=f"comma-separated, of {', '.join(s for s, _ in STRATEGIES)}")
    tables = p.add_mutually_exclusive_group()
    tables.add_argument("--table-only", action="store_true", help="write the table from the finished searches")
    tables.add_argument("--no-table", action="store_true", help="compute the runs only; leave tables/ as it is")
    args = p.parse_args(argv)

    def work() -> str:
        budgets = [b.strip() for b in args.budgets.split(",") if b.strip()]
        bad = [b for b in budgets if b not in BUDGETS]
        if bad:
            raise CpnasError(f"unknown budget(s) {bad}; choose from {', '.join(BUDGETS)}")
        wanted = [s.strip() for s in args.strategies.split(",") if s.strip()]
        strategies = [(s, beta) for s, beta in STRATEGIES if s in wanted]
        if len(strategies) != len(wanted):
            raise CpnasError(f"unknown strategy in {wanted}; choose from {', '.join(s for s, _ in STRATEGIES)}")
        try:
            seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        except ValueError:
            raise CpnasError(f"--seeds expects comma-separated integers, got {args.seeds!r}") from None
        if not args.table_only:
            todo = searches(budgets, seeds, strategies)
            run_searches([s.spec for s in todo], get_config(args.scale), then=SCORING, workers=args.jobs,
                         data_root=args.data, desc="ranking searches", names=[s.label for s in todo])
        return "tables/ left as it is (--no-table)" if args.no_table else write_table(args.scale)

    return run_study(p.prog, work)

if __name__ == "__main__":
    sys.exit(main())
