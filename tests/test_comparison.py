"""The pre-registered strategy comparison (cpnas.comparison) and the paired / Holm-level statistics."""

from __future__ import annotations

import pytest
from scipy import stats as sps

from cpnas import comparison, stats
from cpnas.stats import mde, minimum_detectable_difference, paired, welch


def test_paired_test_removes_the_shared_variation():
    cell_effect = [40.0, 45.0, 35.0, 50.0, 42.0]
    xs = [c + 1.0 + e for c, e in zip(cell_effect, (0.1, -0.1, 0.05, 0.0, -0.05))]
    d = paired(xs, cell_effect)
    assert d["test"] == "paired" and d["diff"] == pytest.approx(1.0) and d["p"] < 0.001
    assert d["p"] == pytest.approx(sps.ttest_rel(xs, cell_effect).pvalue)
    assert welch(xs, cell_effect)["p"] > 0.5  # unpaired, the cells' spread hides the difference


def test_mde_is_computed_at_the_holm_level():
    d = welch([40, 42, 44, 41], [38, 40, 39, 41])
    assert mde(d) == pytest.approx(minimum_detectable_difference(d["std_a"], 4, d["std_b"], 4))
    assert mde(d, family_size=4) == pytest.approx(
        minimum_detectable_difference(d["std_a"], 4, d["std_b"], 4, alpha=0.05 / 4))
    assert mde(d, family_size=4) > mde(d)


def test_a_family_is_corrected_for_every_planned_contrast_even_without_data():
    values = {"cpnas": [40, 42, 44, 41, 43, 45], "random": [38, 40, 39, 41, 37, 40], "rs": [41.0]}
    family = [("cpnas", "random", +1), ("cpnas", "rs", +1), ("cpnas", "bnas", +1)]
    out = comparison.judge_family(values, family)
    assert [d["p"] is None for d in out] == [False, True, True]
    assert all(d["family_size"] == 3 for d in out)
    alone = welch(values["cpnas"], values["random"])
    assert out[0]["p_adjusted"] == pytest.approx(min(1.0, 3 * alone["p"]))
    assert out[0]["mde_holm"] == pytest.approx(mde(alone, family_size=3))


def test_no_contrast_is_in_two_families():
    primary = {(a, b) for a, b, _ in comparison.PRIMARY}
    assert ("cpnas", "bnas") in primary and (2.0, 0.0) not in {(a, b) for a, b, _ in comparison.BETA_FAMILY}
    assert {b for b in comparison.BETAS} >= {x for a, b, _ in comparison.BETA_FAMILY for x in (a, b)}


def test_stopping_rule_adds_seeds_while_the_holm_mde_is_above_the_limit():
    assert comparison.seeds_to_add({"cpnas": [40.0] * 3, "random": [30.0] * 40}) == {
        "cpnas": 6, "rs": 6, "bnas": 6, "pcdarts": 6}
    noisy = {"cpnas": [40, 46, 34, 44, 36, 42], "rs": [38, 44, 33, 43, 35, 41], "bnas": [40.0, 40.1] * 3,
             "pcdarts": [39.0, 39.1] * 3, "random": [30.0 + i % 7 for i in range(40)]}
    more = comparison.seeds_to_add(noisy)
    assert more["cpnas"] == 7 and more["rs"] == 7
    capped = {k: (list(v) * 2 if k != "random" else v) for k, v in noisy.items()}
    assert "cpnas" not in comparison.seeds_to_add(capped) or comparison.seeds_to_add(capped)["cpnas"] <= comparison.MAX_SEEDS


def test_relative_improvement_and_percentile():
    r = stats.relative_improvement([43.0, 45.0], [40.0, 40.0, 40.0])
    assert r["ri"] == pytest.approx(10.0) and r["ri_ci_low"] <= 10.0 <= r["ri_ci_high"]
    assert stats.percentile(41.0, [40.0, 41.0, 42.0, 39.0]) == pytest.approx(62.5)
    rows = comparison.arm_rows({"cpnas": [44.0, 46.0], "random": [40.0, 40.0, 40.0]}, {"cpnas": [60.0, 70.0]})
    assert [r["arm"] for r in rows] == ["cpnas", "random"] and rows[0]["search_thread_minutes"] == 65.0


def test_the_plan_runs_the_primary_arms_first_and_the_betas_last():
    first = comparison.planned_searches({}, {}, "cpu", phase=0)
    assert {s.strategy for s in first} == {"cpnas", "rs"} and len(first) == 2 * comparison.MIN_SEEDS
    assert {s.beta_p for s in first if s.strategy == "cpnas"} == {2.0}
    everything = comparison.planned_searches({}, {}, "cpu")
    extra = [s for s in everything if s.strategy == "cpnas" and s.beta_p != 2.0]
    assert sorted({s.beta_p for s in extra}) == [1.0, 4.0] and len(extra) == 2 * comparison.BETA_SEEDS
    assert {s.variant for s in everything} == {"cpu"} and {s.study for s in everything} == {comparison.STUDY}
    # once every arm has its seeds, the stopping rule decides: a wide arm asks for a 7th seed
    values = {"random": [40.0 + i for i in range(40)], "cpnas": [45, 52, 38, 50, 41, 49],
              "rs": [44, 45, 44, 45, 44, 45], "bnas": [44, 45, 44, 45, 44, 45], "pcdarts": [44, 45, 44, 45, 44, 45]}
    seeds = {s.seed for s in comparison.planned_searches(values, {}, "cpu") if s.strategy == "cpnas" and s.beta_p == 2.0}
    assert seeds == set(range(comparison.MIN_SEEDS + 1))
    # ... already once the primary arms have their first seeds, before the extra β_P are planned
    primary = comparison.planned_searches(values, {}, "cpu", phase=comparison.STOP_AFTER_PHASE)
    assert {s.seed for s in primary if s.strategy == "cpnas"} == seeds and {s.beta_p for s in primary} <= {2.0, None}
    assert {s.seed for s in comparison.planned_searches(values, {}, "cpu", phase=0)} == set(range(comparison.MIN_SEEDS))


def test_the_comparison_waits_for_the_whole_ranking_study_and_never_writes_an_empty_table(tmp_path, monkeypatch):
    from cpnas.errors import CpnasError

    monkeypatch.setenv("CPNAS_HOME", str(tmp_path))
    with pytest.raises(CpnasError, match="search-ranking study is unfinished"):
        comparison.chosen_budget("cpu")
    with pytest.raises(CpnasError, match="no found cell"):
        comparison.write_tables("cpu", "cpu")
    assert not (tmp_path / "tables").exists()
    assert comparison.main(["--table-only"]) == 2
    with pytest.raises(SystemExit):
        comparison.main(["--budget", "huge", "--table-only"])


def write_scores(cells, sign: int) -> None:
    """Every ranking search's score file, each score ``sign`` × the cell's index among ``cells``."""
    from cpnas import ranking
    from cpnas.io import write_json

    for i, search in enumerate(ranking.searches()):
        search.out("cpu").mkdir(parents=True, exist_ok=True)
        write_json(search.out("cpu") / ranking.SCORES_FILE,
                   {"strategy": search.strategy, "budget": search.budget, "seed": 0, "search_minutes": 1.0 + i,
                    "cells": {c.name: dict.fromkeys(("child", "parent", "z_beta2", "z_beta0"), sign * float(j))
                              for j, c in enumerate(cells)}})


def test_the_budget_rule_waits_for_the_ground_truth_of_every_scored_cell(tmp_path, monkeypatch):
    """All ranking searches done is not enough: τ reads the benchmark's top-1, so every cell the searches
    score must be trained first."""
    from cpnas import cellbench, ranking
    from cpnas.errors import CpnasError
    from cpnas.io import write_json

    monkeypatch.setenv("CPNAS_HOME", str(tmp_path))
    cells = ranking.scored_cells("cpu")
    write_scores(cells, +1)

    def train(cell):
        out = cellbench.run_spec(cell).out("cpu")
        out.mkdir(parents=True)
        write_json(out / "metrics.json", {"seed": 0, "top1": 40.0 + cells.index(cell), "wall_clock_s": 60.0})

    for cell in cells[:-1]:
        train(cell)
    with pytest.raises(CpnasError, match=f"ground truth is unfinished \\(1 benchmark cells untrained: {cells[-1].name}\\)"):
        comparison.chosen_budget("cpu")
    train(cells[-1])
    choice = comparison.chosen_budget("cpu")
    assert choice["ranks"] and choice["budget"] == "study"  # the scores order the cells as their top-1 does


def test_the_budget_rule_is_applied_once_and_later_changes_do_not_move_it(tmp_path, monkeypatch):
    """The runner records the rule's first answer. Later changes to what the rule reads (replicate trainings
    change the ground truth of the scored cells; here the scores are reversed outright) change the ranking's
    τ, but not the budget the comparison runs at."""
    from cpnas import cellbench, ranking
    from cpnas.comparison_plan import choice_path
    from cpnas.io import write_json

    monkeypatch.setenv("CPNAS_HOME", str(tmp_path))
    cells = ranking.scored_cells("cpu")
    write_scores(cells, +1)
    for j, cell in enumerate(cells):
        out = cellbench.run_spec(cell).out("cpu")
        out.mkdir(parents=True)
        write_json(out / "metrics.json", {"seed": 0, "top1": 40.0 + j, "wall_clock_s": 60.0})
    assert comparison.chosen_budget("cpu")["budget"] == "study" and not choice_path("cpu").exists()  # no record
    choice = comparison.chosen_budget("cpu", record=True)
    assert choice_path("cpu").is_file() and choice["budget"] == "study" and choice["ranks"]
    assert choice["benchmark_trainings"] == len(cells) and "applied once" in choice["reason"]

    write_scores(cells, -1)  # the scores now run against the benchmark's top-1 at every budget
    fresh = ranking.choose_budget(ranking.pooled_rows("cpu", only=(ranking.RULE_STRATEGY, ranking.RULE_SCORE)))
    assert not fresh["ranks"]
    again = comparison.chosen_budget("cpu")
    assert again["budget"] == "study" and again["ranks"] and again["benchmark_trainings"] == len(cells)
    assert comparison.budget_state("cpu")["budget"] == "study"


def test_verdict_rows_keep_the_families_apart_and_say_their_test():
    values = {"random": [40.0 + i % 5 for i in range(40)], "cpnas": [47, 48, 46, 49, 47, 48],
              "rs": [44, 45, 44, 45, 43, 45], "bnas": [44, 45, 46, 45, 44, 45], "pcdarts": [41, 42, 41, 43, 42, 41]}
    betas = {0.0: values["bnas"], 1.0: [45, 46, 45, 44, 46], 2.0: values["cpnas"], 4.0: [46, 45, 47, 46, 45]}
    rows = comparison.verdict_rows(values, betas)
    fams = [r["family"] for r in rows]
    assert fams.count("primary") == len(comparison.PRIMARY) and len(rows) == len(comparison.PRIMARY) + len(comparison.BETA_FAMILY)
    assert {r["test"] for r in rows} == {"Welch"}
    assert all(r["family_size"] == (4 if r["family"] == "primary" else 2) for r in rows)
    primary = {r["b"]: r for r in rows if r["family"] == "primary"}
    assert primary["random"]["verdict"] == "supported" and primary["random"]["p_adjusted"] >= primary["random"]["p"]


def test_the_runner_settles_the_primary_family_by_its_stopping_rule_before_the_secondary_betas(tmp_path, monkeypatch):
    """``comparison.run`` with the searches and trainings faked: each phase's searches run, then their cells
    are trained; once the primary arms have their first seeds, rounds of the stopping rule add one seed to
    each arm of a contrast whose Holm-level MDE stays above the limit, until the cap; the secondary β_P
    after them; every cell is trained once; Table 1 and the loss study last."""
    import random

    from cpnas import cellbench, comparison_tables, runs
    from cpnas.io import write_json

    monkeypatch.setenv("CPNAS_HOME", str(tmp_path))
    rng = random.Random(0)
    for cell in cellbench.fixed_cells():  # random sampling: the benchmark's uniform cells, already trained
        out = cellbench.run_spec(cell).out("cpu")
        out.mkdir(parents=True)
        write_json(out / runs.METRICS, {"seed": 0, "top1": 45.0 + rng.gauss(0, 3), "wall_clock_s": 60.0})

    rounds: list[list[tuple[str, float | None, int]]] = []
    trained: list[str] = []

    def fake_searches(specs, cfg, **kw):  # like runs.run_searches: a finished search is only read
        todo = [s for s in specs if not (s.out("cpu") / runs.GENOTYPE).exists()]
        rounds.append([(s.strategy, s.beta_p, s.seed) for s in todo])
        for s in todo:
            out = s.out("cpu")
            out.mkdir(parents=True)
            cellbench.uniform_genotype(len(trained) + 100 * s.seed + 7).save(out / runs.GENOTYPE)
            write_json(out / runs.COST, {"wall_clock_s": 120.0, "cpu_s": 60.0, "epochs": 35})

    def fake_trainings(specs, cfg, **kw):  # like runs.run_all: a finished training is only read
        for s in specs:
            if (s.out("cpu") / runs.METRICS).exists():
                continue
            trained.append(str(s.out("cpu")))
            s.out("cpu").mkdir(parents=True)
            # CP-NAS's cells scatter widely, so its contrasts stay wide and the rule extends them to the cap
            spread = 8.0 if "cpnas-beta2" in str(s.out("cpu")) else 1.0
            write_json(s.out("cpu") / runs.METRICS, {"seed": s.seed, "top1": 45.0 + rng.gauss(0, spread),
                                                     "wall_clock_s": 60.0})

    tables = []
    monkeypatch.setattr(runs, "run_searches", fake_searches)
    monkeypatch.setattr(runs, "run_all", fake_trainings)
    monkeypatch.setattr(comparison_tables, "run", lambda *a, **kw: tables.append(a))
    comparison.run("cpu", "study")

    first, second = ({(st, b) for st, b, _ in r} for r in rounds[:2])
    assert first == {("cpnas", 2.0), ("rs", None)} and second == {("bnas", None), ("pcdarts", None)}
    assert [len(r) for r in rounds[:2]] == [2 * comparison.MIN_SEEDS] * 2
    # then the stopping rule's rounds on the primary arms, and only after them the extra β_P, in one last round
    *stops, last = rounds[2:]
    assert sorted((b, seed) for st, b, seed in last) == sorted(
        (b, seed) for b in (1.0, 4.0) for seed in range(comparison.BETA_SEEDS))
    extra = [(st, b, seed) for r in stops for st, b, seed in r]
    assert extra and all(seed >= comparison.MIN_SEEDS and b not in (1.0, 4.0) for _, b, seed in extra)
    search_arms = [a for a, (strategy, _) in comparison.ARMS.items() if strategy is not None]
    assert all(len(r) <= len(search_arms) for r in stops)  # at most one seed per arm and round
    values, minutes = comparison.arm_values("cpu", "study")
    assert len(values["cpnas"]) == comparison.MAX_SEEDS  # the wide arm was extended to the cap, and no further
    assert all(comparison.MIN_SEEDS <= len(values[a]) <= comparison.MAX_SEEDS for a in ("rs", "bnas", "pcdarts"))
    assert minutes["cpnas"] == [1.0] * comparison.MAX_SEEDS  # recorded thread-minutes, not the wall-clock
    assert len(trained) == len(set(trained)) == sum(len(r) for r in rounds)  # each found cell trained once
    assert tables == [("cpu", "study")]


def test_pcdarts_alpha_gets_at_least_the_travel_of_its_own_schedule_at_every_budget():
    """lr × architecture steps ≥ PC-DARTS's 6e-4 × 35 × 98, and equal to it unless the paper's rate is kept
    where the budget already has the steps; only the comparison's PC-DARTS searches get the raised rate."""
    import math

    from cpnas.config import get_config
    from cpnas.pcdarts import PCDartsSettings
    from cpnas.ranking import BUDGETS
    from cpnas.runs import apply, overrides

    rates = {}
    for budget in BUDGETS:
        over = comparison.pcdarts_overrides(budget)
        pc = apply(get_config("cpu"), overrides(over)).section(PCDartsSettings)
        steps = (pc.pc_epochs - pc.pc_warmup_epochs) * math.ceil(
            round(BUDGETS[budget].get("search.train_fraction", get_config("cpu").search.train_fraction) * 50_000)
            / pc.pc_batch_size)
        assert pc.pc_arch_lr * steps == pytest.approx(max(comparison.PC_ARCH_TRAVEL, 6e-4 * steps))
        rates[budget] = pc.pc_arch_lr
    assert rates["study"] > rates["cpu"] > rates["large"] == 6e-4
    specs = comparison.search_arms("study", [0])
    lr = {s.strategy: dict(s.overrides).get("search.pc_arch_lr") for s in specs}
    assert lr["pcdarts"] == rates["study"] and lr["cpnas"] is None and lr["rs"] is None
    from pathlib import Path

    deviations = (Path(__file__).parents[1] / "docs" / "deviations.md").read_text(encoding="utf-8").splitlines()
    row = next(line for line in deviations if line.startswith("| PC-DARTS's architecture learning rate"))
    assert f"{rates['study'] * 1e3:.2f}×10⁻³" in row and f"{rates['cpu'] * 1e3:.2f}×10⁻³" in row


def test_a_family_waits_for_its_plan_and_reads_interim_until_then():
    tight = {"random": [30.0, 31.0, 32.0] * 4, **{a: [m - 0.5, m, m + 0.5] * 2 for a, m in
                                                 (("cpnas", 41.0), ("rs", 35.5), ("bnas", 40.0), ("pcdarts", 39.0))}}
    short = {**tight, "pcdarts": tight["pcdarts"][:3]}
    betas = {1.0: [30.0, 30.5, 29.5, 30.2, 29.8], 4.0: [30.0, 31.0, 32.0]}
    assert comparison.waits_for(short, betas) == {"primary": {"pcdarts": comparison.MIN_SEEDS},
                                                  "beta": {4.0: comparison.BETA_SEEDS}}
    wide = {**tight, "cpnas": [30.0, 50.0] * 3}  # CP-NAS's contrasts too wide: β_P = 2 (and BNAS†'s 0) wait too
    assert comparison.waits_for(wide, {**betas, 4.0: [30.0, 30.5, 29.5, 30.2, 29.8]})["beta"] == {2.0: comparison.MIN_SEEDS + 1,
                                                                             0.0: comparison.MIN_SEEDS + 1}
    verdicts = {r["family"]: r["verdict"] for r in comparison.verdict_rows(short, {2.0: tight["cpnas"], **betas})}
    assert verdicts == {"primary": comparison.INTERIM, "β_P (Fig. 6 left)": comparison.INTERIM}
    rows = comparison.verdict_rows(tight, {2.0: tight["cpnas"], 1.0: [30.0, 30.5, 29.5, 30.2, 29.8], 4.0: [30.0, 31.0] * 3})
    assert {r["verdict"] for r in rows} == {"supported"}
