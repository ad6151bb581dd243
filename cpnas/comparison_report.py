"""The strategy comparison shown: its report, figures and tables, and Table 1's rows for notebook 03.

Everything here reads finished runs at the budget the search ranking chose
(:func:`cpnas.comparison.budget_state`) and says what it waits for until then;
nothing is computed. The analysis itself is :mod:`cpnas.comparison` (arms, families,
stopping rule) and :mod:`cpnas.comparison_tables` (Table 1, the CP-loss study); the
verdicts in words are :mod:`cpnas.claims`.
"""

from __future__ import annotations

from typing import Any

from cpnas.comparison import (TABLE_COLUMNS, VERDICT_COLUMNS, any_found, arm_rows, arm_values, beta_values,
                              budget_state, verdict_rows, waits_for, write_tables)


REPORT_PARTS = ("strategies", "table1", "loss")
"""What :func:`report` renders: the comparison's arms and verdicts, Table 1, the CP-loss study."""


def report(scale: str, part: str) -> str:
    """Markdown of one part of the comparison at the budget the ranking study chose, with its verdicts
    (Table 1 and the CP-loss study: :mod:`cpnas.comparison_tables`); while the budget is undecided or no
    training of the part has finished, what it waits for."""
    import pandas as pd

    from cpnas import claims, comparison_tables
    from cpnas.errors import CpnasError

    if part not in REPORT_PARTS:
        raise CpnasError(f"unknown part {part!r}; choose one of {', '.join(REPORT_PARTS)}")
    choice = budget_state(scale)
    budget = choice["budget"]
    if budget is None:
        return f"Not run yet: {choice['reason']}."
    head = f"At the `{budget}` search budget ({choice['reason']})."
    note = f"`{scale}` training budget; searches at the `{budget}` budget"
    if part == "strategies":
        values, minutes = arm_values(scale, budget)
        if not any_found(values):
            return f"{head} No found cell is trained yet."
        arms = pd.DataFrame(arm_rows(values, minutes), columns=list(TABLE_COLUMNS))
        verdicts = pd.DataFrame([{k: r.get(k) for k in VERDICT_COLUMNS}
                                 for r in verdict_rows(values, beta_values(scale, budget))])
        return (f"{head}\n\n{arms.to_markdown(index=False, floatfmt='.2f')}\n\n"
                f"{verdicts.to_markdown(index=False, floatfmt='.3g')}")
    rows, judge = ((comparison_tables.table1_rows(scale, budget), claims.table1_claims) if part == "table1"
                   else (comparison_tables.loss_rows(scale, budget), claims.loss_claims))
    if not rows:
        return f"{head} No training of it has finished yet."
    return f"{head}\n\n{claims.markdown(judge(rows, note))}"


FIGURE_PARTS = ("strategies", "beta", "table1", "loss")
"""What :func:`figure` draws: the arms (Fig. 6 right), the β_P searches (Fig. 6 left), Table 1's rows, the
CP-loss study."""


def figure(scale: str, part: str):
    """One part of the comparison as a figure, every found cell or training seed a dot
    (:func:`cpnas.plots_benchmark.strategy_dots`, :func:`cpnas.plots_ablation.seed_dots`); ``None`` while the
    budget is undecided or the part has nothing trained."""
    from cpnas import comparison_tables
    from cpnas.claims import ARM_TITLES
    from cpnas.errors import CpnasError
    from cpnas.plots_ablation import seed_dots
    from cpnas.plots_benchmark import strategy_dots

    if part not in FIGURE_PARTS:
        raise CpnasError(f"unknown part {part!r}; choose one of {', '.join(FIGURE_PARTS)}")
    budget = budget_state(scale)["budget"]
    if budget is None:
        return None
    title = f"at the `{budget}` search budget"
    if part in ("strategies", "beta"):
        arms, betas = arm_values(scale, budget)[0], beta_values(scale, budget)
        values = arms if part == "strategies" else betas
        if not any_found(values):
            return None
        labels = ARM_TITLES if part == "strategies" else {b: f"β_P = {b:g}" for b in values}
        interim = " (interim: the plan adds seeds)" if waits_for(arms, betas)[
            "primary" if part == "strategies" else "beta"] else ""
        return strategy_dots(values, labels=labels,
                             title=f"{'Search strategies' if part == 'strategies' else 'β_P'} {title}{interim}")
    if part == "table1":
        from cpnas.table_runs import TABLE1_ROWS

        rows = comparison_tables.table1_rows(scale, budget)
        return (seed_dots(rows, "table1", order=list(TABLE1_ROWS), title=f"Table 1 of ours, {title}",
                          n_means="search seeds") if rows else None)
    rows = comparison_tables.loss_rows(scale, budget)
    return seed_dots(rows, "loss", title=f"The CP-loss study, {title}",
                     n_means="training seeds of one cell") if rows else None


def tables(scale: str) -> str:
    """:func:`write_tables` at the chosen budget once a found cell is trained; else what the tables wait for
    (nothing is written, so committed tables are never replaced by empty ones)."""
    from cpnas.errors import CpnasError

    state = budget_state(scale)
    if state["budget"] is None:
        return f"Not run yet: {state['reason']}."
    try:
        return write_tables(scale, state["budget"])
    except CpnasError as exc:
        return f"Not written yet: {exc}."


def table1_metrics(scale: str) -> dict[str, list[dict[str, Any]]]:
    """``{row label: [metrics.json of each finished training]}`` of Table 1 at the budget the ranking study
    chose, for :func:`cpnas.tables.table1`; empty until that budget is chosen. Each training's metrics gain
    the search that found its cell (``search``: strategy, folder and ``cost.json``, for the table's method
    and search-cost columns) and that search's seed (``search_seed``: a row's seeds are search seeds)."""
    from cpnas import comparison_tables, runs
    from cpnas.comparison_plan import ARMS
    from cpnas.io import read_json
    from cpnas.table_runs import TABLE1_ROWS

    budget = budget_state(scale)["budget"]
    out: dict[str, list[dict[str, Any]]] = {}
    for r in comparison_tables.table1_rows(scale, budget) if budget else ():
        arm = TABLE1_ROWS[r["label"]]["strategy"]
        strategy, beta = ARMS[arm]
        folder = comparison_tables.search_folder(scale, budget, arm, r["seed"])
        cost = read_json(folder / runs.COST) if (folder / runs.COST).is_file() else None
        search = {"strategy": strategy, "beta_p": beta, "out": str(folder), "cost": cost}
        out.setdefault(r["label"], []).append({**r["metrics"], "search": search, "search_seed": r["seed"]})
    return out
