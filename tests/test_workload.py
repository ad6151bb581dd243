"""Thread-hours of the studies (cpnas.workload): recorded where runs finished, estimated where they remain."""

from __future__ import annotations

import pytest

from cpnas import cellbench, comparison, ranking, workload
from cpnas.io import write_json


def _train(out, minutes):
    out.mkdir(parents=True)
    write_json(out / "metrics.json", {"seed": 0, "top1": 40.0, "wall_clock_s": 60.0 * minutes})


def _search(out, minutes):
    out.mkdir(parents=True)
    write_json(out / "cost.json", {"wall_clock_s": 60.0 * minutes})
    write_json(out / ranking.SCORES_FILE, {"cells": {}})


def test_recorded_hours_and_estimates(tmp_path, monkeypatch):
    monkeypatch.setenv("CPNAS_HOME", str(tmp_path))
    cells = cellbench.fixed_cells()
    _train(cellbench.run_spec(cells[0]).out("cpu"), 30)
    _train(cellbench.run_spec(cells[1]).out("cpu"), 90)
    _train(tmp_path / "results" / "cpu" / "recipe" / "sweep" / "x" / "seed0", 12)  # a deeper stage is found
    study = {s.strategy: s for s in ranking.searches(["study"])}
    _search(study["cpnas"].out("cpu"), 6)
    _search(study["rs"].out("cpu"), 3)
    rows = {r["study"].split(" at ")[0]: r for r in workload.rows("cpu")}
    bench = rows["cell benchmark"]
    assert bench["runs_done"] == 2 and bench["hours_done"] == pytest.approx(2.0)
    left = len(cellbench.specs(cells)) - 2
    assert bench["runs_left"] == left and bench["hours_left"] == pytest.approx(left * 1.0)
    assert rows["recipe sweep"]["hours_done"] == pytest.approx(0.2) and rows["recipe sweep"]["runs_left"] is None
    # cpu-budget searches are estimated at 4x the study budget's, large ones at 4x those
    hours = workload.search_hours("cpu", "large")
    assert hours["cpnas"] == pytest.approx(16 * 0.1) and hours["rs"] == pytest.approx(16 * 0.05)
    assert "thread-hours" in workload.markdown("cpu")
    # the stopping rule's most: every search arm from its first seeds to the cap, one search and one training each
    extra = comparison.MAX_SEEDS - comparison.MIN_SEEDS
    runs, hours = workload.stopping_rule_cap("cpu", "study")
    assert runs == 2 * 4 * extra
    assert f"at most {runs} more runs" in workload.markdown("cpu", "study")
    # once the rule asks for no more seeds it can add nothing, and the README says the family is judged
    monkeypatch.setattr(comparison, "seeds_to_add", lambda values: {})
    assert workload.stopping_rule_cap("cpu", "study") == (0, 0.0)
    assert "asks for no more seeds" in workload.markdown("cpu", "study")


def test_a_run_counts_the_cpu_time_it_recorded_not_the_wall_clock_it_waited(tmp_path, monkeypatch):
    monkeypatch.setenv("CPNAS_HOME", str(tmp_path))
    cells = cellbench.fixed_cells()
    out = cellbench.run_spec(cells[0]).out("cpu")
    out.mkdir(parents=True)
    write_json(out / "metrics.json", {"seed": 0, "top1": 40.0, "wall_clock_s": 7200.0, "cpu_s": 1800.0})
    _train(cellbench.run_spec(cells[1]).out("cpu"), 60)  # no CPU record: its wall-clock
    assert sorted(workload.recorded_hours("cpu")[("cellbench", "train")]) == [pytest.approx(0.5), pytest.approx(1.0)]
