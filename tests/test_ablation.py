"""cpnas.ablation and cpnas.parallel: run lists, caching, parallel workers, summaries."""

import json
import math

import pytest

from cpnas import ablation as A
from cpnas import cells, claims, stats, table_runs
from cpnas import runs as R
from cpnas.ablation import __main__ as ablation_cli
from cpnas.config import PAPER, get_config, iter_fields
from cpnas.errors import CpnasError
from cpnas.parallel import default_workers, run_jobs


def test_beta_sweep_maps_zero_to_bnas_and_two_to_the_plain_cpnas_search():
    runs = A.beta_runs(seeds=(0,))
    by_label = {r.label: r for r in runs}
    assert [r.label for r in runs] == ["0", "0.33", "0.5", "1", "2", "3", "4"]
    assert by_label["0"].strategy == "bnas" and by_label["0"].search_name == "bnas"
    assert by_label["2"].search_name == "cpnas"
    assert by_label["0.33"].search_name == "cpnas-beta0.33"
    assert A.beta_of(by_label["0"]) == 0.0 and A.beta_of(by_label["2"]) == 2.0


def test_shared_runs_are_computed_once():
    runs = A.beta_runs(seeds=(0, 1)) + A.strategy_runs(seeds=(0, 1))
    unique = A.unique_runs(runs, "cpu")
    # 7 betas + random + pcdarts (bnas and cpnas are the β=0 and β=2 points), per seed
    assert len(unique) == 2 * 9
    assert len({r.train_dir("cpu") for r in unique}) == len(unique)


def test_loss_variants_have_distinct_folders_and_configs():
    runs = A.loss_runs("g.json", seeds=(0,))
    assert len({r.train_dir("cpu") for r in runs}) == len(A.LOSS_VARIANTS)
    full = next(r for r in runs if r.label == "CP loss (Eq. 4)")
    ce = next(r for r in runs if r.label == "cross-entropy")
    assert full.loss == "cp" and ce.loss == "ce"
    kernel_parent = next(r for r in runs if "Parent" in r.label)
    cfg = A.ablation_config("cpu", dict(kernel_parent.loss_overrides))
    assert cfg.loss.kernel_source == "parent" and cfg.loss.center_lambda == 0.0
    with pytest.raises(CpnasError, match="unknown loss variant"):
        A.loss_runs("g.json", variants=["nope"])
    # the same variants on a second cell live in their own folders
    bnas = A.loss_runs("b.json", seeds=(0,), study="loss-bnas")
    assert not {r.train_dir("cpu") for r in bnas} & {r.train_dir("cpu") for r in runs}
    assert all(r.train_name.startswith("loss-bnas-") for r in bnas)
    with pytest.raises(CpnasError, match="unknown loss study"):
        A.loss_runs("g.json", study="loss-x")


@pytest.mark.parametrize("scale", list(A.ABLATION_SIZES))
def test_ablation_sizes_change_size_fields_only(scale):
    meta = {k: m for k, _, m in iter_fields(PAPER)}
    for key in A.ABLATION_SIZES[scale]:
        assert meta[key].get("size"), f"ablation at {scale} changes the non-size field {key}"
    A.ablation_config(scale)  # every key exists


def test_unknown_scale_is_refused():
    with pytest.raises(CpnasError, match="unknown scale"):
        A.ablation_config("huge")


def test_summary_mean_and_sample_std():
    rows = [{"study": "beta", "label": "1", "top1": v, "search_wall_clock_s": 60.0, "train_wall_clock_s": 120.0}
            for v in (10.0, 20.0, 30.0)]
    rows.append({"study": "strategy", "label": "x", "top1": 99.0, "search_wall_clock_s": None,
                 "train_wall_clock_s": 1.0})
    s = stats.summarize(rows, "beta")
    assert s.loc[0, "n"] == 3 and s.loc[0, "top1 mean"] == 20.0 and s.loc[0, "top1 std"] == 10.0
    assert s.loc[0, "search (min)"] == 1.0 and s.loc[0, "train (min)"] == 2.0


def test_seed_dots_keeps_every_n_label_inside_the_axes():
    """The ``n=`` label right of each row's widest dot or error bar ends inside the frame, also for the row
    that reaches furthest right (the axis's automatic limit stops at that dot)."""
    from cpnas.plots_ablation import seed_dots

    common = {"study": "t", "search_wall_clock_s": None, "train_wall_clock_s": 60.0, "epochs": 3,
              "dataset": "cifar10", "train_images": 100, "test_images": 100, "scale": "cpu"}
    tops = {"a network with a long row label": (41.0, 46.0, 53.0), "b": (44.0, 50.0, 58.0), "c": (53.0, 55.0, 55.0)}
    rows = [{**common, "label": label, "top1": v} for label, values in tops.items() for v in values]
    fig = seed_dots(rows, "t", title="Table")
    _assert_n_labels_inside(fig, 3)


def test_strategy_dots_keeps_every_n_label_inside_the_axes():
    """The strategy comparison's dot plot places its ``n=`` labels the same way (one helper for both)."""
    from cpnas.plots_benchmark import strategy_dots

    fig = strategy_dots({"an arm with a long row label": [41.0, 46.0, 53.0], "b": [44.0, 50.0, 58.0],
                         "random": [53.0, 55.0, 55.0]})
    _assert_n_labels_inside(fig, 3)


def _assert_n_labels_inside(fig, count):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    ax = fig.axes[0]
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    renderer = canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    notes = [t for t in ax.texts if t.get_text().startswith("n=")]
    assert len(notes) == count
    assert all(t.get_window_extent(renderer).x1 <= frame.x1 for t in notes)


def _square(x):
    return x * x


def _fail_if_odd(x):
    if x % 2:
        raise CpnasError(f"odd {x}")
    return x


@pytest.mark.parametrize("workers", [1, 2])
def test_run_jobs_keeps_order_and_collects_failures(workers):
    assert run_jobs([(_square, {"x": i}) for i in range(4)], workers=workers) == [0, 1, 4, 9]
    with pytest.raises(CpnasError, match=r"2 of 4 .*odd 1.*odd 3|2 of 4 .*odd 3.*odd 1"):
        run_jobs([(_fail_if_odd, {"x": i}) for i in range(4)], workers=workers)


def test_default_workers(monkeypatch):
    monkeypatch.setenv("CPNAS_WORKERS", "3")
    assert default_workers() == 3
    monkeypatch.setenv("CPNAS_WORKERS", "zero")
    with pytest.raises(CpnasError, match="CPNAS_WORKERS"):
        default_workers()
    monkeypatch.delenv("CPNAS_WORKERS")
    assert 1 <= default_workers("cpu") <= 2


def run_rows(runs, scale, *, jobs=1, dataset="synthetic"):
    """What notebooks 03 and 05 do: every missing run computed (cpnas.runs.run_all), then the rows loaded."""
    from cpnas.config import get_config
    from cpnas.runs import run_all

    run_all(A.specs(runs, scale, dataset), get_config(scale), workers=jobs, load=False)
    return A.load_rows(runs, scale, dataset)


def test_run_all_computes_caches_and_reloads(tmp_path, monkeypatch, data_dir):
    """Two runs in two worker processes at the smoke scale on synthetic data, then a cached re-run."""
    monkeypatch.setenv("CPNAS_HOME", str(tmp_path))
    genotype = data_dir / "darts_v2.json"
    runs = A.strategy_runs(seeds=(0,), strategies=("random",)) + \
        A.loss_runs(genotype, seeds=(0,), variants=("cross-entropy",))
    rows = run_rows(runs, "smoke", jobs=2)
    assert [r["label"] for r in rows] == ["random", "cross-entropy"]
    assert all(0.0 <= r["top1"] <= 100.0 and r["scale"] == "smoke" for r in rows)
    assert rows[0]["search_wall_clock_s"] is not None and rows[1]["search_wall_clock_s"] is None
    metrics = tmp_path / "results" / "smoke" / "ablation" / "train" / "loss-cross-entropy" / "seed0" / "metrics.json"
    assert json.loads(metrics.read_text())["loss"] == "ce"
    stamp = metrics.stat().st_mtime_ns
    again = run_rows(runs, "smoke", jobs=2)
    assert again == rows and metrics.stat().st_mtime_ns == stamp  # loaded, not retrained


def test_run_all_trains_a_cell_of_the_sweep_after_its_search(tmp_path, monkeypatch):
    """A loss run on the cell another run of the same sweep finds waits for that search (two workers)."""
    monkeypatch.setenv("CPNAS_HOME", str(tmp_path))
    search = A.strategy_runs(seeds=(0,), strategies=("random",))
    cell = search[0].search_dir("smoke", "synthetic") / "genotype.json"
    runs = A.loss_runs(cell, seeds=(0,), variants=("cross-entropy",), study="loss-bnas") + search
    rows = run_rows(runs, "smoke", jobs=2)
    assert [r["study"] for r in rows] == ["loss-bnas", "strategy"]
    trained = json.loads((runs[0].train_dir("smoke") / "config.json").read_text())
    # stored relative to the project root (CPNAS_HOME here), so it resolves on any clone
    assert trained["genotype_path"] == str(cell.relative_to(tmp_path))


def test_train_many_trains_in_workers_then_loads(tmp_path, monkeypatch, data_dir):
    from cpnas.runs import train_many

    monkeypatch.setenv("CPNAS_HOME", str(tmp_path))
    cfg = get_config("smoke")
    genotype = str(data_dir / "darts_v2.json")
    runs = {"a": {"genotype": genotype, "dataset": "synthetic"},
            "b": {"genotype": genotype, "dataset": "synthetic", "loss": "ce"}}
    first = train_many(runs, cfg, workers=2)
    assert list(first) == ["a", "b"] and first["a"]["loss"] == "cp" and first["b"]["loss"] == "ce"
    metrics = tmp_path / "results" / "smoke" / "train" / "a" / "seed0" / "metrics.json"
    stamp = metrics.stat().st_mtime_ns
    assert train_many(runs, cfg, workers=2) == first and metrics.stat().st_mtime_ns == stamp
    with pytest.raises(CpnasError, match="exactly one of"):
        train_many({"c": {"dataset": "synthetic"}}, cfg)


def _record_pid_and_sleep(path):
    import os
    import time
    from pathlib import Path

    Path(path, str(os.getpid())).touch()
    time.sleep(120)


def test_sigterm_to_the_parent_ends_the_workers(tmp_path):
    """Killing a sweep (SIGTERM) must not leave workers running on, writing into run folders."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    code = ("import sys; sys.path.insert(0, 'tests'); from cpnas.parallel import run_jobs; "
            "from test_ablation import _record_pid_and_sleep as f; "
            f"run_jobs([(f, {{'path': {str(tmp_path)!r}}})] * 2, workers=2)")
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=root)
    deadline = time.time() + 60
    while len(list(tmp_path.iterdir())) < 2 and time.time() < deadline:
        time.sleep(0.2)
    pids = [int(p.name) for p in tmp_path.iterdir()]
    assert len(pids) == 2, "the workers did not start"
    parent.send_signal(signal.SIGTERM)
    parent.wait(timeout=30)

    def alive(pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    deadline = time.time() + 15
    while any(alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(alive(p) for p in pids)


def test_genotype_table_counts_ops_and_marks_identical_cells(tmp_path, monkeypatch, data_dir):
    import shutil

    monkeypatch.setenv("CPNAS_HOME", str(tmp_path))
    runs = {r.label: r for r in A.beta_runs(seeds=(0,))}
    for label, source in (("3", "darts_v2.json"), ("4", "darts_v2.json"), ("1", "pcdarts_cifar.json")):
        folder = runs[label].search_dir("cpu")
        folder.mkdir(parents=True)
        shutil.copy(data_dir / source, folder / "genotype.json")
        (folder / "complete.json").write_text("{}")  # a finished search (cpnas.search.COMPLETE)
    table = cells.genotype_table(list(runs.values()), "cpu").set_index("label")
    assert sorted(table.index) == ["1", "3", "4"]  # runs without a finished search are left out
    darts = table.loc["3"]  # DARTS V2: 6 convs + 2 skips (normal), 5 max-pools + 3 skips (reduce)
    assert (darts["kept edges"], darts["conv ops"], darts["pool ops"]) == (16, 6, 5)
    assert darts["conv share"] == pytest.approx(6 / 16)
    assert table.loc["3", "cells"] == table.loc["4", "cells"] != table.loc["1", "cells"]
    assert cells.same_cells(table.reset_index()) == [(3.0, 4.0)]


def test_study_cost_counts_each_shared_folder_once_and_names_the_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("CPNAS_HOME", str(tmp_path))
    runs = table_runs.table1_runs(seeds=(0,))
    by = {r.label: r for r in runs}
    cp_search, bnas_search = by["CP-NAS (Small)"].search_dir("cpu"), by["BNAS†"].search_dir("cpu")
    for folder, name, seconds in ((cp_search, "cost.json", 600.0), (bnas_search, "cost.json", 420.0),
                                  (by["CP-NAS (Small)"].train_dir("cpu"), "metrics.json", 300.0),
                                  (by["CP-NAS (Large)"].train_dir("cpu"), "metrics.json", 900.0),
                                  (by["CP-NAS (Large)"].train_dir("cpu") / "parent", "metrics.json", 60.0)):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(json.dumps({"wall_clock_s": seconds}))
    cost = R.study_cost(A.specs(runs, "cpu"), "cpu")
    # the CP-NAS search feeds three rows and is counted once; the Parent counts as a training
    assert (cost["searches"], cost["search_s"]) == (2, 1020.0)
    assert (cost["trainings"], cost["train_s"]) == (3, 1260.0)  # the Large training 900 s + its Parent 60 s
    assert cost["total_s"] == 2280.0 and len(cost["missing"]) == 3  # CE, Medium and BNAS† trainings
    # the three missing trainings are projected from the finished ones: small (300 s) for CE, and no finished
    # medium training, so the median of every finished training's time (960 with its Parent, 300: 630 s)
    assert cost["projected_s"] == pytest.approx(2280.0 + 300.0 + 630.0 + 630.0)
    assert R.cost_words(cost, 2).startswith("2 searches 17.0 min + 3 trainings 21.0 min = 38.0 min")
    assert "3 run(s) not finished, not counted (projected from the finished runs of their kind: 64 min" in \
        R.cost_words(cost, 2)


def test_difference_is_welch_t_test_and_words_follow_it():
    rows = [{"study": "s", "label": a, "top1": v} for a, vs in (("a", (20.0, 22.0, 24.0)), ("b", (10.0, 11.0, 12.0)),
                                                                   ("c", (16.0, 22.0, 28.0))) for v in vs]
    d = stats.difference(rows, "s", "a", "b")
    assert d["diff"] == pytest.approx(11.0) and d["se"] == pytest.approx(math.sqrt(4 / 3 + 1 / 3))
    assert d["df"] == pytest.approx((5 / 3) ** 2 / ((4 / 3) ** 2 / 2 + (1 / 3) ** 2 / 2))
    assert d["p"] < 0.01 and stats.significant(d) and "larger than the seed-to-seed noise" in claims.in_words(d)
    close = stats.difference(rows, "s", "a", "c")  # same mean, a wide spread
    assert close["p"] == pytest.approx(1.0) and "within the seed-to-seed noise" in claims.in_words(close)
    assert stats.difference(rows, "s", "a", "missing")["p"] is None


def test_gap_penalty_runs_have_their_own_searches_and_trainings():
    gap = A.gap_runs(seeds=(0,))
    printed = A.beta_runs(seeds=(0,))
    assert [r.label for r in gap] == ["0.5", "2"] and {r.study for r in gap} == {"beta-gap"}
    assert not {r.train_dir("cpu") for r in gap} & {r.train_dir("cpu") for r in printed}
    assert not {r.search_dir("cpu") for r in gap} & {r.search_dir("cpu") for r in printed}
    assert gap[0].search_dir("cpu").parent.name == "cpnas-beta0.5-gap"
    spec = gap[1].spec("cpu")
    assert dict(spec.search.overrides)["search.indicator"] == "gap_penalty"
    assert "search.indicator" not in dict(printed[4].spec("cpu").search.overrides)


def test_table1_rows_share_the_strategy_studys_searches_and_small_training():
    t1 = table_runs.table1_runs(seeds=(0, 1))
    assert len(t1) == 2 * len(table_runs.TABLE1_ROWS) and {r.study for r in t1} == {"table1"}
    by = {(r.label, r.seed): r for r in t1}
    strat = {(r.label, r.seed): r for r in A.strategy_runs(seeds=(0, 1))}
    assert by["CP-NAS (Small)", 1].spec("cpu") == strat["cpnas", 1].spec("cpu")  # one folder, computed once
    assert by["CP-NAS (Large)", 0].search_dir("cpu") == strat["cpnas", 0].search_dir("cpu")
    assert by["BNAS†", 0].search_dir("cpu") == strat["bnas", 0].search_dir("cpu")
    assert (by["CP-NAS (Large)", 0].spec("cpu").size, by["BNAS†", 0].spec("cpu").size) == ("large", "medium")
    assert by["CP-NAS (Small), cross-entropy only", 0].spec("cpu").loss == "ce"
    assert len(A.unique_runs(t1 + A.strategy_runs(seeds=(0, 1)), "cpu")) == 2 * (len(table_runs.TABLE1_ROWS) - 1 + 4)
    assert table_runs.default_table1_seeds("cpu") == (0, 1, 2) and A.default_seeds("cpu") == (0, 1, 2, 3, 4)


def test_loss_variants_with_the_kernel_term_measure_it_where_the_recipe_turns_it_off():
    assert get_config("cpu").loss.kernel_weight == 0.0 and PAPER.loss.kernel_weight == 1.0
    runs = {r.label: r for r in A.loss_runs("g.json", seeds=(0,))}
    weight = {label: dict(r.spec("cpu").overrides).get("loss.kernel_weight") for label, r in runs.items()}
    assert weight == {"cross-entropy": None, "+ kernel term (H = Child)": A.LOSS_KERNEL_WEIGHT,
                      "+ kernel term (H = Parent)": A.LOSS_KERNEL_WEIGHT, "+ center term": 0.0,
                      "CP loss (Eq. 4)": A.LOSS_KERNEL_WEIGHT}
    # at the paper scale the recipe's weight (1) stands
    assert "loss.kernel_weight" not in dict(runs["CP loss (Eq. 4)"].spec("paper").overrides)


@pytest.mark.parametrize("argv,message", [(["--seeds", "a,b"], "comma-separated integers"),
                                          (["--study", "beta,nope"], "unknown study"),
                                          (["--scale", "nope"], "invalid choice"),
                                          (["--jobs", "0"], "positive integer"),
                                          (["--study", "loss", "--genotype", "/nope/g.json"], "no such file")])
def test_cli_refuses_bad_input_with_one_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        raise SystemExit(ablation_cli.main(argv))
    assert exit_.value.code == 2 and message in capsys.readouterr().err
