"""The paper's strategy claims at power: pre-registered contrasts, families, stopping rule and effect sizes.

Written before any of its runs, so that the analysis cannot follow the data.

**Arms.** Each search strategy runs at the budget the search-ranking study picks
(:func:`cpnas.ranking.choose_budget`), each found cell is trained once at the ``cpu``
training budget and joins the cell benchmark (:mod:`cpnas.cellbench`, study
:data:`STUDY`); the top-1 of an arm is that of its cells:

* ``cpnas`` — CP-NAS at β_P = 2; ``bnas`` — BNAS† (β_P = 0); ``pcdarts`` — PC-DARTS, whose
  architecture learning rate is raised where the budget gives α fewer steps than PC-DARTS's own
  schedule (:func:`pcdarts_overrides`);
  ``rs`` — random search with weight sharing at CP-NAS's compute (:mod:`cpnas.randomsearch`);
* ``random`` — random sampling: the benchmark's uniform cells (no search).

**Families** (one Holm correction each; no contrast is in two families):

* :data:`PRIMARY`: CP-NAS against random sampling, random search, BNAS† and PC-DARTS
  (a − b, the paper's sign +1: CP-NAS better). "β_P = 2 against 0" *is* CP-NAS against
  BNAS† and is counted here only;
* :data:`BETA_FAMILY` (Fig. 6 left): β_P = 2 against 1 and against 4, from searches at
  β_P ∈ {0, 1, 2, 4} (β_P = 0 and 2 are the BNAS† and CP-NAS arms);
* the convolution share against β_P (§3.4): Kendall τ-b over the found cells, one test.

Welch's test compares arms (their cells differ); the paired test is used wherever both
arms share a cell and a seed (:func:`cpnas.stats.pairing`). Each verdict carries its
minimum detectable difference at its Holm level (:func:`cpnas.stats.mde`).

**Order of the runs** (:data:`PHASES`): what decides the primary family first — CP-NAS
and random search — then BNAS† and PC-DARTS; each phase's searches run, then their cells
are trained. Then the stopping rule adds seeds to the primary arms
(:data:`STOP_AFTER_PHASE`), and only then come the extra β_P of the secondary family.

**Stopping rule** (:func:`seeds_to_add`): every search arm starts with
:data:`MIN_SEEDS` search seeds. After that, while a primary contrast's MDE at its Holm
level exceeds :data:`MDE_LIMIT` points, both of its arms get another seed, up to
:data:`MAX_SEEDS`. Random sampling has the benchmark's 40 cells from the start.

**Effect sizes** (:func:`cpnas.stats.relative_improvement`, :func:`cpnas.stats.percentile`): the relative
improvement over random sampling of Yang et al. (ICLR 2020),
RI = 100 · (top-1 − mean random) / mean random, with a percentile-bootstrap interval
over the arm's cells and the random cells; and each found cell's percentile within
the benchmark's uniform cells.
"""

from __future__ import annotations

import statistics
from typing import Any, Sequence

from cpnas.strategy_base import search_for_beta

from cpnas.comparison_plan import (ALPHA, ARMS, BETA_FAMILY, BETA_SEEDS, BETAS, MAX_SEEDS,  # noqa: F401
                                   INTERIM, MDE_LIMIT, MIN_SEEDS, PC_ARCH_TRAVEL, PHASES, PRIMARY, STOP_AFTER_PHASE,
                                   STUDY, pcdarts_overrides)


def contrast(values: dict[str, Sequence[float]], a: str, b: str) -> dict[str, Any]:
    """Welch's test of arm ``a`` minus arm ``b`` (their cells differ)."""
    from cpnas.stats import welch

    return {"a": a, "b": b, **welch(values.get(a, ()), values.get(b, ()))}


def judge_family(values: dict[str, Sequence[float]], family: Sequence[tuple[Any, Any, int]], *,
                 chance: float = 10.0) -> list[dict[str, Any]]:
    """Every contrast of one family, Holm-corrected together, each with its verdict and its Holm-level MDE."""
    from cpnas.stats import holm, mde, verdict

    diffs = [contrast(values, a, b) for a, b, _ in family]
    size = len(diffs)  # the family as planned, whether or not each contrast has data yet
    out = []
    for (a, b, sign), d, p_adj in zip(family, diffs, holm([d["p"] for d in diffs])):
        means = [statistics.fmean(values[k]) if values.get(k) else float("nan") for k in (a, b)]
        v = verdict(d, paper_sign=sign, mean_a=means[0], mean_b=means[1], chance=chance, p_adjusted=p_adj,
                    family_size=size)
        out.append({**d, **v, "mean_a": means[0], "mean_b": means[1], "family_size": size,
                    "mde_holm": mde(d, alpha=ALPHA, family_size=size)})
    return out


def seeds_to_add(values: dict[str, Sequence[float]], family: Sequence[tuple[str, str, int]] = PRIMARY,
                 ) -> dict[str, int]:
    """The stopping rule: how many search seeds each arm should have next (arms needing none are absent).

    An arm below :data:`MIN_SEEDS` goes to it. Then, for every contrast whose Holm-level
    MDE is above :data:`MDE_LIMIT` (or cannot be computed), each search arm of it below
    :data:`MAX_SEEDS` gets one more seed. ``random`` is never extended.
    """
    want: dict[str, int] = {}
    for arm in {x for a, b, _ in family for x in (a, b)}:
        if ARMS[arm][0] is not None and len(values.get(arm, ())) < MIN_SEEDS:
            want[arm] = MIN_SEEDS
    if want:
        return want
    for d in judge_family(values, family):
        if d["mde_holm"] is None or d["mde_holm"] > MDE_LIMIT:
            for arm in (d["a"], d["b"]):
                n = len(values.get(arm, ()))
                if ARMS[arm][0] is not None and n < MAX_SEEDS:
                    want[arm] = max(want.get(arm, 0), n + 1)
    return want


def arm_rows(values: dict[str, Sequence[float]], minutes: dict[str, Sequence[float]] | None = None
             ) -> list[dict[str, Any]]:
    """Per arm: n, mean ± std, RI over random sampling with its interval, mean percentile, and the mean search
    thread-minutes of its searches (``minutes``, :func:`arm_values`)."""
    from cpnas.stats import percentile, relative_improvement

    random = list(values.get("random", ()))
    rows = []
    for arm in ARMS:
        xs = list(values.get(arm, ()))
        if not xs:
            continue
        ri = relative_improvement(xs, random) if arm != "random" else {"ri": 0.0, "ri_ci_low": None,
                                                                       "ri_ci_high": None}
        mins = list((minutes or {}).get(arm, ()))
        rows.append({"arm": arm, "n": len(xs), "top1_mean": statistics.fmean(xs),
                     "top1_std": statistics.stdev(xs) if len(xs) > 1 else float("nan"), **ri,
                     "percentile": statistics.fmean(percentile(x, random) for x in xs) if random else float("nan"),
                     "search_thread_minutes": statistics.fmean(mins) if mins else float("nan")})
    return rows


# --------------------------------------------------------------------------- runs


def search_arms(budget: str, seeds: Sequence[int], arms: Sequence[str] = ("cpnas", "bnas", "pcdarts", "rs"),
                betas: Sequence[float] = ()) -> list[Any]:
    """The searches of ``arms`` (and of CP-NAS at the extra ``betas``) at ``budget``, seed-major."""
    from cpnas import runs
    from cpnas.ranking import BUDGETS

    if budget not in BUDGETS:
        from cpnas.errors import CpnasError

        raise CpnasError(f"unknown budget {budget!r}; choose one of {', '.join(BUDGETS)}")
    specs = []
    for seed in seeds:
        for arm in arms:
            strategy, beta = ARMS[arm]
            if strategy is not None:
                over = pcdarts_overrides(budget) if strategy == "pcdarts" else BUDGETS[budget]
                specs.append(runs.SearchSpec(strategy, seed=seed, beta_p=beta, overrides=runs.overrides(over),
                                          study=STUDY, variant=budget))
        for beta in betas:
            specs.append(runs.SearchSpec("cpnas", seed=seed, beta_p=float(beta), overrides=runs.overrides(BUDGETS[budget]),
                                      study=STUDY, variant=budget))
    return specs


def search_folders(scale: str, budget: str, strategy: str, beta: float | None) -> list[tuple[str, Any]]:
    """``(benchmark cell name, search folder)`` of every search of ``strategy`` at ``beta`` and ``budget`` that
    the comparison has started, by seed (the cell is in the benchmark once the search has finished)."""
    from cpnas import runs
    from cpnas.cellbench import searched_name

    name = runs.search_name(strategy, beta, variant=budget)
    return [(searched_name(STUDY, name, folder.name.removeprefix("seed")), folder)
            for folder in sorted((runs.study_dir(scale, STUDY) / "search" / name).glob("seed*"))]


def any_found(values: dict[Any, Sequence[float]]) -> bool:
    """Whether a search arm (or β_P) of ``values`` has a trained cell; random sampling's cells do not count."""
    return any(len(v) for k, v in values.items() if k != "random")


def arm_values(scale: str, budget: str) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """``(top-1s, search thread-minutes)`` per arm: each found cell's seed-0 benchmark training, and for
    ``random`` the uniform cells' seed-0 trainings; the minutes are each search's recorded CPU time over all
    its threads (:func:`cpnas.runs.recorded_thread_seconds`), not its wall-clock, which counts the waits
    for a core that other runs hold."""
    from cpnas import runs
    from cpnas.cellbench import frame

    df = frame(scale)
    df = df[df.seed == 0]
    top1 = dict(zip(df.architecture, df.top1))
    values: dict[str, list[float]] = {"random": [v for a, v in top1.items() if a.startswith("uniform-")]}
    minutes: dict[str, list[float]] = {}
    for arm, (strategy, beta) in ARMS.items():
        if strategy is None:
            continue
        for cell, folder in search_folders(scale, budget, strategy, beta):
            if cell in top1:
                values.setdefault(arm, []).append(top1[cell])
                seconds = runs.recorded_thread_seconds(folder, "search")
                if seconds is not None:
                    minutes.setdefault(arm, []).append(seconds / 60)
    return values, minutes


def chosen_budget(scale: str, *, record: bool = False) -> dict[str, Any]:
    """The search-ranking study's choice (:func:`cpnas.ranking.choose_budget`), once the whole study is done.

    The rule is applied once: the first answer, with ``record=True`` (the comparison's runner), is written
    to :func:`~cpnas.comparison_plan.choice_path` and returned from then on, whatever the benchmark's later
    trainings do to the τ of the ranking table. Before that, it raises :class:`~cpnas.errors.CpnasError`
    while a ranking search is unfinished, or a cell it scores has no seed-0 training in the benchmark (its
    ground truth): the rule is applied to the whole study, never to the part that happens to be done.
    """
    from cpnas.comparison_plan import record_choice, recorded_choice, rule_text

    done = recorded_choice(scale)
    if done is None:
        choice, trainings = _apply_rule(scale)
        if not record:
            return choice
        done = record_choice(scale, choice, trainings)
    return {**done, "reason": rule_text(scale)}


def _apply_rule(scale: str) -> tuple[dict[str, Any], int]:
    """:func:`cpnas.ranking.choose_budget` on today's runs and the number of benchmark trainings it read;
    refused while the study or its ground truth is unfinished (:func:`chosen_budget`)."""
    from cpnas import ranking
    from cpnas.cellbench import frame
    from cpnas.errors import CpnasError

    todo = [s.label for s in ranking.searches() if not ranking.is_done(scale, s)]
    if todo:
        raise CpnasError(f"the search-ranking study is unfinished ({len(todo)} searches left: {', '.join(todo)}); "
                         "finish it (python -m cpnas.ranking) or name a budget with --budget")
    df = frame(scale)
    trained = set(df.architecture[df.seed == 0]) if not df.empty else set()
    untrained = [c.name for c in ranking.scored_cells(scale) if c.name not in trained]
    if untrained:
        raise CpnasError(f"the search-ranking study's ground truth is unfinished ({len(untrained)} benchmark cells "
                         f"untrained: {', '.join(untrained)}); finish it (python -m cpnas.cellbench) "
                         "or name a budget with --budget")
    return ranking.choose_budget(ranking.pooled_rows(scale, only=(ranking.RULE_STRATEGY, ranking.RULE_SCORE))), len(df)


def beta_values(scale: str, budget: str) -> dict[float, list[float]]:
    """Top-1 of the found cells per β_P of :data:`BETAS` (0 and 2 are the BNAS† and CP-NAS arms)."""
    from cpnas.cellbench import frame

    df = frame(scale)
    top1 = dict(zip(df[df.seed == 0].architecture, df[df.seed == 0].top1))
    out: dict[float, list[float]] = {}
    for beta in BETAS:
        for cell, _ in search_folders(scale, budget, *search_for_beta(beta)):
            if cell in top1:
                out.setdefault(beta, []).append(top1[cell])
    return out


def conv_share_test(scale: str, budget: str) -> dict[str, Any]:
    """§3.4: Kendall τ-b between β_P and the convolution share of the found cells (one test)."""
    from cpnas import runs
    from cpnas.cellbench import conv_ops
    from cpnas.genotype import load_genotype
    from cpnas.stats import kendall

    betas, shares = [], []
    for beta in BETAS:
        for _, folder in search_folders(scale, budget, *search_for_beta(beta)):
            if not (folder / runs.GENOTYPE).is_file():
                continue
            g = load_genotype(folder / runs.GENOTYPE)
            edges = sum(len(g.cell(kind)[0]) for kind in ("normal", "reduce"))
            betas.append(beta)
            shares.append(conv_ops(g) / edges)
    return {"family": "conv share vs β_P", "a": "β_P", "b": "conv share", "test": "Kendall τ-b", **kendall(betas, shares)}


def waits_for(values: dict[str, Sequence[float]], betas: dict[float, Sequence[float]]) -> dict[str, dict[Any, int]]:
    """The seeds each family still waits for before it is judged (an empty dict: judged). ``primary``: arm →
    the seeds its stopping rule asks for (:func:`seeds_to_add`). ``beta`` (Fig. 6 left, and §3.4's test over
    the same searches): β_P → :data:`BETA_SEEDS` at each extra β_P still short of them, and the primary
    rule's CP-NAS and BNAS† seeds, which are its β_P = 2 and 0."""
    primary = seeds_to_add(values)
    beta = {b: BETA_SEEDS for b in BETAS if b not in (0.0, 2.0) and len(betas.get(b, ())) < BETA_SEEDS}
    beta.update({b: primary[arm] for arm, b in (("cpnas", 2.0), ("bnas", 0.0)) if arm in primary})
    return {"primary": primary, "beta": beta}


def verdict_rows(values: dict[str, Sequence[float]], betas: dict[float, Sequence[float]]) -> list[dict[str, Any]]:
    """The primary family and Fig. 6 (left)'s family, each Holm-corrected on its own, one row per contrast;
    a family the plan still adds seeds to (:func:`waits_for`) reads :data:`INTERIM`."""
    waits = waits_for(values, betas)
    rows = []
    for key, family, vals, contrasts in (("primary", "primary", values, PRIMARY),
                                         ("beta", "β_P (Fig. 6 left)", betas, BETA_FAMILY)):
        for d in judge_family(vals, contrasts):
            rows.append({"family": family, **d, **({"verdict": INTERIM} if waits[key] else {})})
    return rows


TABLE_COLUMNS = ("arm", "n", "top1_mean", "top1_std", "ri", "ri_ci_low", "ri_ci_high", "percentile",
                 "search_thread_minutes")
VERDICT_COLUMNS = ("family", "a", "b", "test", "n_a", "n_b", "diff", "ci_low", "ci_high", "p", "p_adjusted",
                   "mde_holm", "verdict")


def write_tables(scale: str, budget: str) -> str:
    """``tables[/<scale>]/fig6_strategies.{csv,md}`` (one row per arm) and ``strategy_verdicts.{csv,md}``.

    Refuses while no found cell of ``budget`` is trained, so that a table of earlier
    runs is never replaced by an empty one.
    """
    import pandas as pd

    from cpnas.errors import CpnasError
    from cpnas.paths import save_table

    values, minutes = arm_values(scale, budget)
    if not any_found(values):
        raise CpnasError(f"no found cell of the strategy comparison at budget {budget!r} is trained yet")
    arms = pd.DataFrame(arm_rows(values, minutes), columns=list(TABLE_COLUMNS))
    rows = verdict_rows(values, beta_values(scale, budget))
    verdicts = pd.DataFrame([{k: r.get(k) for k in VERDICT_COLUMNS} for r in rows], columns=list(VERDICT_COLUMNS))
    conv = conv_share_test(scale, budget)
    save_table(arms, "fig6_strategies", scale)
    save_table(verdicts, "strategy_verdicts", scale)
    return (f"budget {budget}\n\n{arms.to_markdown(index=False, floatfmt='.2f')}\n\n"
            f"{verdicts.to_markdown(index=False, floatfmt='.3g')}\n\nconvolution share vs β_P: "
            f"τ = {conv['tau'] if conv['tau'] is None else round(conv['tau'], 3)} (n = {conv['n']}, p = {conv['p']})")


def budget_state(scale: str) -> dict[str, Any]:
    """``{"budget", "reason"}``: the budget :func:`chosen_budget` picks and why, or ``budget = None`` and what
    the choice still waits for (the analyses built on the comparison read nothing until then)."""
    from cpnas.errors import CpnasError

    try:
        choice = chosen_budget(scale)
    except CpnasError as exc:
        return {"budget": None, "reason": str(exc)}
    return {"budget": choice["budget"], "reason": choice["reason"]}


def search_minutes_per_epoch(scale: str, budget: str) -> dict[str, list[float]]:
    """Per search strategy of the comparison (at β_P = 2 for CP-NAS): each finished search's thread-minutes per
    search epoch (:func:`cpnas.runs.recorded_thread_seconds` over the epochs its ``cost.json`` records)."""
    from cpnas import runs
    from cpnas.io import read_json

    out: dict[str, list[float]] = {}
    for arm, (strategy, beta) in ARMS.items():
        if strategy is None:
            continue
        for _, folder in search_folders(scale, budget, strategy, beta):
            seconds = runs.recorded_thread_seconds(folder, "search")
            epochs = read_json(folder / runs.COST).get("epochs") if seconds is not None else None
            if epochs:
                out.setdefault(strategy, []).append(seconds / epochs / 60)
    return out


def planned_searches(values: dict[str, Sequence[float]], betas: dict[float, Sequence[float]], budget: str,
                     phase: int | None = None) -> list[Any]:
    """The searches the plan wants: the phases up to ``phase`` (all by default) at :data:`MIN_SEEDS` /
    :data:`BETA_SEEDS` seeds, and from :data:`STOP_AFTER_PHASE` on, the stopping rule's extra seeds; each
    search once."""
    from cpnas.runs.spec import first_per_key

    phases = PHASES if phase is None else PHASES[:phase + 1]
    specs = []
    for arms, extra in phases:
        specs += search_arms(budget, range(MIN_SEEDS), arms=arms)
        specs += search_arms(budget, range(BETA_SEEDS), arms=(), betas=extra)
    if phase is None or phase >= STOP_AFTER_PHASE:
        for arm, n in seeds_to_add(values).items():
            specs += search_arms(budget, range(n), arms=(arm,))
    return first_per_key(specs, lambda s: s)


def run(scale: str, budget: str, *, jobs: int = 1, data_root: Any = None) -> None:
    """Every phase of :data:`PHASES` in turn (searches, then their cells' trainings); after
    :data:`STOP_AFTER_PHASE`, rounds of the stopping rule until it asks for nothing or every arm it names has
    :data:`MAX_SEEDS` seeds; last, Table 1 and the CP-loss study on the cells found
    (:func:`cpnas.comparison_tables.run`)."""
    from cpnas import cellbench, comparison_tables
    from cpnas.config import get_config
    from cpnas.errors import CpnasError
    from cpnas.runs import GENOTYPE, run_all, run_searches

    cfg = get_config(scale)

    def search(specs: Sequence[Any]) -> None:
        run_searches(specs, cfg, workers=jobs, data_root=data_root, desc="strategy searches")

    def train_found() -> None:
        cells = [c for c in cellbench.searched_cells(scale) if c.name.startswith(f"{STUDY}-")]
        specs = cellbench.specs(cells, replicates=False)
        run_all(specs, cfg, workers=jobs, data_root=data_root, desc="cell benchmark",
                names=cellbench.names(specs), load=False)

    def stopping_rounds(phase: int) -> None:
        while True:
            values, _ = arm_values(scale, budget)
            todo = [s for s in planned_searches(values, beta_values(scale, budget), budget, phase)
                    if not (s.out(scale) / GENOTYPE).is_file()]
            if not todo:
                return
            search(todo)
            train_found()
            if arm_values(scale, budget)[0] == values:
                raise CpnasError("the stopping rule asked for seeds but no new cell was trained; see the run logs")

    for phase in range(len(PHASES)):
        values, _ = arm_values(scale, budget)
        search(planned_searches(values, beta_values(scale, budget), budget, phase))
        train_found()
        if phase >= STOP_AFTER_PHASE:
            stopping_rounds(phase)
    comparison_tables.run(scale, budget, jobs=jobs, data_root=data_root)


def main(argv: Sequence[str] | None = None) -> int:
    import sys

    from cpnas.arguments import run_study, study_parser
    from cpnas.ranking import BUDGETS

    p = study_parser("python -m cpnas.comparison", __doc__.split("\n\n")[0], ("cpu", "smoke"))
    p.add_argument("--budget", default=None, choices=tuple(BUDGETS),
                   help="search budget (default: the one the finished search-ranking study chooses)")
    p.add_argument("--table-only", action="store_true", help="write the tables from the finished runs")
    args = p.parse_args(argv)

    def work():
        budget = args.budget
        if budget is None:
            choice = chosen_budget(args.scale, record=not args.table_only)
            print(f"budget {choice['budget']}: {choice['reason']}", file=sys.stderr)
            budget = choice["budget"]
        if not args.table_only:
            run(args.scale, budget, jobs=args.jobs, data_root=args.data)
        return write_tables(args.scale, budget)

    return run_study(p.prog, work)


if __name__ == "__main__":
    import sys

    sys.exit(main())
