"""The cell benchmark (cpnas.cellbench) and the search-ranking study (cpnas.ranking)."""

from __future__ import annotations

import hashlib
import json

import pytest

from cpnas import cellbench
from cpnas import ranking
from cpnas.config import get_config
from cpnas.genotype import DARTS_V2, NUM_INPUTS
from cpnas.io import write_json
from cpnas.ops import PRIMITIVES

# The committed list: changing the draws would orphan every finished benchmark training.
UNIFORM_SHA256 = "261e75e40e2ee4d9c011f54a21efc83fa71ab8c3da451d631237a1cc45ad4f3e"


def _digest(cells) -> str:
    text = json.dumps([c.genotype.to_dict() for c in cells], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def test_the_fixed_cells_are_the_published_two_and_the_seeded_uniform_draws():
    cells = cellbench.fixed_cells()
    assert len(cells) == 2 + cellbench.N_UNIFORM and len({c.name for c in cells}) == len(cells)
    assert cells[0].genotype == DARTS_V2 and cells[1].genotype == cellbench.PCDARTS_PAPER
    assert set(cellbench.REPLICATED) <= {c.name for c in cells}
    assert _digest(cells[2:]) == UNIFORM_SHA256
    for cell in cells[2:]:
        for kind in ("normal", "reduce"):
            edges, _ = cell.genotype.cell(kind)
            assert len(edges) == 8 and all(op in PRIMITIVES and op != "none" for op, _, _ in edges)
            for j in range(NUM_INPUTS, NUM_INPUTS + 4):
                sources = [i for _, i, jj in edges if jj == j]
                assert len(sources) == 2 and len(set(sources)) == 2 and all(i < j for i in sources)
    assert cellbench.uniform_genotype(7) == cellbench.fixed_cells()[9].genotype  # a draw depends on its index only


def test_the_benchmark_trains_at_the_cpu_budget():
    spec = cellbench.run_spec(cellbench.fixed_cells()[0])
    cfg = get_config("cpu")
    t = cfg.cifar
    assert (t.layers, t.channels_small, t.epochs, t.batch_size) == (8, 12, 3, 32)
    assert round(50000 * t.train_fraction) == 20000 and t.test_fraction == 1.0
    assert (t.optimizer, t.lr, t.lr_schedule) == ("adam", 1e-2, "cosine_step")
    assert spec.loss == "ce" and spec.size == "small" and spec.overrides == ()
    order = cellbench.specs(cellbench.fixed_cells())
    assert [s.seed for s in order[:42]] == [0] * 42 and len(order) == 42 + 2 * len(cellbench.REPLICATED)


def test_frame_reads_finished_trainings(tmp_path, monkeypatch):
    monkeypatch.setenv("CPNAS_HOME", str(tmp_path))
    cells = cellbench.fixed_cells()
    for cell, seed, top1, cpu in ((cells[0], 0, 40.0, None), (cells[0], 1, 42.0, 300.0), (cells[3], 0, 30.0, None)):
        out = cellbench.run_spec(cell, seed).out("cpu")
        out.mkdir(parents=True)
        write_json(out / "metrics.json", {"seed": seed, "top1": top1, "params": 1000, "val_top1": top1 - 1,
                                          "test_images": 10000, "wall_clock_s": 600.0, "cpu_s": cpu})
    df = cellbench.frame("cpu")
    assert list(df.columns) == list(cellbench.COLUMNS) and len(df) == 3
    s = cellbench.summary(df)
    assert s["architectures"] == 2 and s["mean"] == pytest.approx(35.5) and s["replicated"] == 1
    assert s["seed_std"] == pytest.approx(2 ** 0.5)
    row = df[df.architecture == "darts_v2"].iloc[0]
    assert row.conv_ops == 6 and row.input_edge_share == pytest.approx(12 / 16) and row.minutes == 10.0
    # a run that recorded its CPU time counts it, not the wall-clock it spent waiting for a busy core
    assert df[df.architecture == "darts_v2"].minutes.tolist() == [10.0, 5.0]


def _run(strategy, budget, minutes, scores):
    return {"strategy": strategy, "budget": budget, "seed": 0, "search_minutes": minutes,
            "cells": {f"c{i}": {"parent": 0.5, "z_beta2": s} for i, s in enumerate(scores)}}


def test_the_budget_rule_takes_the_cheapest_budget_that_ranks():
    truth = {f"c{i}": float(i) for i in range(12)}
    good, bad = list(range(12)), [5, 3, 8, 1, 11, 0, 6, 2, 9, 4, 7, 10]
    runs = [_run("cpnas", "study", 10, bad), _run("cpnas", "cpu", 60, good), _run("cpnas", "large", 200, good)]
    pooled = ranking.pooled_rows("cpu", runs, truth)
    choice = ranking.choose_budget(pooled)
    assert choice == {**choice, "budget": "cpu", "ranks": True}
    none = ranking.choose_budget(ranking.pooled_rows("cpu", runs[:1], truth))
    assert none["ranks"] is False and none["budget"] == "study"
    rows = ranking.rank_rows("cpu", runs, truth)
    assert {r["budget"]: round(r["tau"], 6) for r in rows}["cpu"] == 1.0


def test_ranking_budgets_differ_fourfold_in_supernet_training():
    def training(budget):
        cfg = ranking.search_config("cpu", ranking.RankSearch("cpnas", budget))
        s = cfg.search
        epochs = sum(range(2, 9)) * s.T  # Alg. 1: K = 8 … 2 draws per pass, T passes per round
        return round(50000 * s.train_fraction) * epochs
    study, cpu, large = (training(b) for b in ranking.BUDGETS)
    assert cpu >= 4 * study and large >= 4 * cpu
    assert ranking.search_config("cpu", ranking.RankSearch("cpnas", "large")).search.T >= 2


def test_a_ranking_search_is_a_search_then_its_scoring_in_one_job(tmp_path, monkeypatch):
    """python -m cpnas.ranking hands its searches to cpnas.runs.run_searches with the scoring stage: one job per
    unscored search, the stage picklable for spawned workers; a search is done once its scores are written."""
    import pickle

    from cpnas import parallel

    monkeypatch.setenv("CPNAS_HOME", str(tmp_path))
    jobs = []
    monkeypatch.setattr(parallel, "run_jobs", lambda js, **k: jobs.append(([kw for _, kw in js], k["names"])))
    assert ranking.main(["--budgets", "study", "--strategies", "cpnas,rs", "--seeds", "0"]) == 0
    (kwargs, names), = jobs
    assert [kw["search"] for kw in kwargs] == [s.spec for s in ranking.searches(["study"], (0,),
                                                                                 [("cpnas", 2.0), ("rs", None)])]
    assert all(kw["then"] is ranking.SCORING for kw in kwargs) and names == ["cpnas study seed 0", "rs study seed 0"]
    assert pickle.loads(pickle.dumps(ranking.SCORING)) == ranking.SCORING
    done = ranking.RankSearch("cpnas", "study", 0, 2.0)
    done.out("cpu").mkdir(parents=True)
    write_json(done.out("cpu") / ranking.SCORES_FILE, {"strategy": "cpnas", "budget": "study", "seed": 0,
                                                      "search_minutes": 1.0, "cells": {}})
    assert ranking.is_done("cpu", done) and ranking.SCORING.is_finished(done.out("cpu"))
    jobs.clear()
    assert ranking.main(["--budgets", "study", "--strategies", "cpnas,rs", "--seeds", "0"]) == 0
    assert [kw["search"].strategy for kw in jobs[0][0]] == ["rs"]


@pytest.mark.parametrize("study", [cellbench, ranking], ids=["cellbench", "ranking"])
def test_no_table_computes_the_runs_and_leaves_the_tables_alone(study, tmp_path, monkeypatch):
    from cpnas import parallel

    monkeypatch.setenv("CPNAS_HOME", str(tmp_path))
    jobs = []
    monkeypatch.setattr(parallel, "run_jobs", lambda js, **k: jobs.append(js))
    args = ["--cells", "darts_v2"] if study is cellbench else ["--budgets", "study", "--strategies", "rs"]
    assert study.main([*args, "--no-table"]) == 0
    assert jobs and not (tmp_path / "tables").exists()
    assert study.main([*args]) == 0 and any((tmp_path / "tables").iterdir())
    with pytest.raises(SystemExit):
        study.main(["--no-table", "--table-only"])


def test_every_committed_benchmark_training_ran_eager():
    """The ground truth trains every cell one way: no committed benchmark run was compiled."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "results" / "cpu" / cellbench.STUDY / "train"
    records = sorted(root.glob("*/seed*/metrics.json"))
    compiled = []
    for path in records:
        acc = json.loads(path.read_text()).get("acceleration", {})
        flag = acc.get("compiled", {}).get("train", False) if isinstance(acc.get("compiled"), dict) \
            else bool(acc.get("compile"))
        if flag:
            compiled.append(str(path.relative_to(root)))
    assert records and not compiled, compiled


def test_benchmark_figures_draw_data_and_say_when_there_is_none():
    import pandas as pd
    from matplotlib.figure import Figure

    from cpnas import plots_benchmark as P

    bench = pd.DataFrame({"architecture": ["uniform-00", "uniform-01", "darts_v2", "ranking-rs-cpu-s0",
                                           "strategies-cpnas-beta2-study-s0", "strategies-cpnas-beta2-study-s1"],
                          "top1": [40.0, 45.0, 44.0, 46.0, 43.0, 47.0],
                          "source": ["uniform", "uniform", "published (Liu et al. 2019)", "searched: ranking/rs-cpu",
                                     "searched: strategies/cpnas-beta2-study", "searched: strategies/cpnas-beta2-study"],
                          "seed": [0, 0, 0, 0, 0, 0]})
    fig = P.benchmark_distribution(bench)
    ax = fig.axes[0]
    assert isinstance(fig, Figure) and len(ax.collections) == 6  # one marker per architecture
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "uniform (2)", "published (1)", "found by cpnas-beta2 (2)", "found by rs (1)"]  # searches grouped, counted
    assert [t.get_text() for t in ax.texts] == ["darts_v2"]  # only the published cells are named
    dots = P.strategy_dots({"cpnas": [41.0, 43.0], "random": [40.0, 45.0, 42.0], "rs": []},
                           labels={"cpnas": "CP-NAS"})
    assert [t.get_text() for t in dots.axes[0].get_yticklabels()] == ["CP-NAS", "random"]  # an empty arm is left out
    assert dots.axes[0].get_title().endswith("shaded: random, mean ± std") and dots.axes[0].get_legend() is None
    for empty in (P.benchmark_distribution(bench.iloc[:0]), P.strategy_dots({})):
        assert "no " in empty.axes[0].texts[0].get_text()
