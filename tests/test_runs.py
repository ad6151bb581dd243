"""cpnas.runs: one run spec, one layout, one run-or-load; every committed run is found where the studies look."""

import subprocess
from pathlib import Path

import pytest

from cpnas import ablation as A
from cpnas import cellbench as C
from cpnas import ranking as K
from cpnas import proxy as P
from cpnas import recipe as Rc
from cpnas import runs as R
from cpnas import table_runs
from cpnas.config import get_config
from cpnas.errors import CpnasError
from cpnas.runs import run_or_load, run_specs
from cpnas.genotype import DARTS_V2
from cpnas.paths import project_root

SCALE = "cpu"

from cpnas.table_runs import table2_runs


def _committed_runs(scale: str) -> set[Path]:
    """Folders of the committed finished runs: a training's metrics.json or a search's complete.json."""
    root = project_root()
    out = subprocess.run(["git", "ls-files", f"results/{scale}"], cwd=root, capture_output=True, text=True,
                         check=True).stdout.split()
    return {(root / f).parent for f in out
            if f.endswith(("/metrics.json", "/complete.json")) and "/parent/" not in f}


def _study_specs(scale: str) -> list[R.RunSpec]:
    """Every run spec of every study at ``scale`` (notebooks 03-05, ablation, proxy, recipe, cell benchmark)."""
    from cpnas.tables import default_genotype_path

    ablation = A.all_runs(default_genotype_path(scale), bnas_genotype=A.bnas_genotype_path(scale))
    ablation += table_runs.table1_runs()  # notebook 03
    specs = [r.spec(scale) for r in A.unique_runs(ablation, scale)]
    specs += [s for row in table2_runs((0, 1, 2)).values() for s in row]  # notebook 04
    specs += [P.run_spec(scale, c, b) for c in P.ALL_CELLS for b in P.BUDGETS]
    specs += [Rc.run_spec(scale, v, 0) for v in Rc.VARIANTS]
    specs += [Rc.run_spec(scale, v, s, full=True, cell=c) for v in Rc.VARIANTS for s in (0, 1, 2) for c in Rc.CELLS]
    specs += C.specs(C.all_cells(scale))  # the cell benchmark
    return specs


def _ranking_folders(scale: str) -> set[Path]:
    """The search-ranking study's searches (each scored the benchmark in its folder), seeds 0-2."""
    return {s.out(scale) for s in K.searches(tuple(K.BUDGETS), (0, 1, 2))}


def _comparison_searches(scale: str) -> dict[Path, R.SearchSpec]:
    """The strategy comparison's searches at every budget, each arm and extra β_P up to the seed cap."""
    from cpnas import comparison

    return {s.out(scale): s for budget in K.BUDGETS
            for s in comparison.search_arms(budget, range(comparison.MAX_SEEDS),
                                           betas=[b for _, extra in comparison.PHASES for b in extra])}


def _comparison_training_specs(scale: str) -> list[R.RunSpec]:
    """Table 1's and the CP-loss study's trainings on the comparison's found cells, at every budget."""
    from cpnas import comparison_tables as T

    return ([spec for budget in K.BUDGETS for *_, spec in T.table1_specs(scale, budget)]
            + [spec for budget in K.BUDGETS for *_, spec in T.loss_specs(scale, budget)])


def _comparison_trainings(scale: str) -> set[Path]:
    return {spec.out(scale) for spec in _comparison_training_specs(scale)}


def _search_folders(specs: list[R.RunSpec], scale: str) -> set[Path]:
    return {s.search.out(scale) for s in specs if s.search is not None}


def test_layout_of_the_notebooks_and_studies():
    root = project_root() / "results" / SCALE
    assert R.search_dir(SCALE, "cpnas", 0) == root / "search" / "cpnas" / "seed0"
    assert R.search_dir(SCALE, "cpnas", 1, 0.5, study="ablation") == root / "ablation/search/cpnas-beta0.5/seed1"
    assert R.search_dir(SCALE, "cpnas", 0, dataset="imagenet") == root / "search" / "imagenet-cpnas" / "seed0"
    assert R.train_dir(SCALE, "cpnas-small", 2) == root / "train" / "cpnas-small" / "seed2"
    assert P.train_dir(SCALE, P.ProxyCell("random", 3), "short") == root / "proxy/train/random-s3/short/seed0"
    assert Rc.run_dir(SCALE, "adam-1e-2", 1, full=True, cell="cpnas-s0") == \
        root / "recipe/full/adam-1e-2-on-cpnas-s0/seed1"
    assert Rc.run_dir(SCALE, "paper-sgd", 0) == root / "recipe/sweep/paper-sgd/seed0"
    from cpnas.tables import default_genotype_path

    assert default_genotype_path(SCALE) == R.search_dir(SCALE, "cpnas", 0) / "genotype.json"


def test_every_committed_run_is_the_folder_of_a_study_spec():
    """The specs of notebooks 02-05, the ablation, the proxy check and the recipe study cover every committed run."""
    committed = _committed_runs(SCALE)
    assert committed, "no committed runs found"
    specs = _study_specs(SCALE)
    folders = {s.out(SCALE) for s in specs} | _search_folders(specs, SCALE) | _ranking_folders(SCALE)
    folders |= set(_comparison_searches(SCALE)) | _comparison_trainings(SCALE)
    assert committed - folders == set()
    # every committed run of the ablation's folder is one of its specs (the studies fill in across sittings)
    ablation = {p for p in committed if A.ablation_dir(SCALE) in p.parents}
    abl_specs = [s for s in specs if s.study == A.STUDY]
    assert ablation <= {s.out(SCALE) for s in abl_specs} | _search_folders(abl_specs, SCALE)
    # the proxy's finished runs are found in its own folders, and nowhere else
    for cell in P.CELLS:
        found = P.finished_metrics(SCALE, cell, "cpu")
        assert (found is None) == (P.train_dir(SCALE, cell, "cpu") not in committed)


def test_committed_runs_are_found_never_recomputed(monkeypatch):
    """run_or_load finds every committed training of every study in its folder: no search or training starts.

    A run whose cache key still equals today's config is loaded (the cell benchmark's, the strategy
    comparison's Table 1 and CP-loss trainings); one made
    with an older config or search is found and refused with one line, never recomputed over (the
    03/04 trainings, the ablation, the proxy and the recipe runs predate today's cpu preset).
    The ablation's own loader reads all its finished rows, as notebook 05 does.
    """
    import cpnas.evaluation
    import cpnas.search
    from cpnas.tables import default_genotype_path

    def refuse(*args, **kwargs):
        raise AssertionError("a committed run was recomputed")

    monkeypatch.setattr(cpnas.evaluation, "train_genotype", refuse)
    monkeypatch.setattr(cpnas.search, "run_search", refuse)
    committed = _committed_runs(SCALE)
    trainings = {p for p in committed if (p / "metrics.json").exists()}
    base = get_config(SCALE)
    found, loaded = set(), set()
    for spec in _study_specs(SCALE) + _comparison_training_specs(SCALE):
        if spec.out(SCALE) not in committed:
            continue
        try:
            result = run_or_load(spec, base)
        except CpnasError as exc:
            assert "holds a" in str(exc), exc  # found in its folder, refused for another config
        else:
            assert result.metrics["scale"] == SCALE and result.metrics["seed"] == spec.seed
            loaded.add(spec.out(SCALE))
        found.add(spec.out(SCALE))
    assert found == trainings
    # the cell benchmark trains at today's cpu preset: its runs load (the proxy and recipe runs predate it)
    assert {p for p in trainings if C.STUDY in p.parts} <= loaded
    # so do Table 1's and the CP-loss study's trainings on the comparison's found cells
    assert _comparison_trainings(SCALE) & committed <= loaded
    # the ablation's loader reads every finished row without computing (CPNAS_COMPUTE=0 in 03 and 05)
    ablation = A.all_runs(default_genotype_path(SCALE), bnas_genotype=A.bnas_genotype_path(SCALE))
    rows = A.load_rows(A.unique_runs(ablation + table_runs.table1_runs(), SCALE), SCALE)
    assert {p for p in trainings if A.STUDY in p.parts} <= {Path(r["train_dir"]) for r in rows}


def test_a_spec_names_a_search_or_a_genotype():
    with pytest.raises(CpnasError, match="exactly one of"):
        R.RunSpec("x")
    with pytest.raises(CpnasError, match="exactly one of"):
        R.RunSpec("x", search=R.SearchSpec("cpnas"), genotype=DARTS_V2)
    with pytest.raises(CpnasError, match="unknown key"):
        run_specs({"x": {"genotype": "g.json", "out": "somewhere"}})
    spec = R.RunSpec("x", genotype="g.json", overrides=R.overrides({"cifar.epochs": 2, "cifar.batch_size": 8}))
    assert spec.overrides == (("cifar.batch_size", 8), ("cifar.epochs", 2))
    assert R.apply(get_config("smoke"), spec.overrides) == get_config("smoke", {"cifar.epochs": 2,
                                                                                  "cifar.batch_size": 8})
    # the search's data folder is where it reads, not what it is
    assert R.SearchSpec("cpnas", data_root="/a") == R.SearchSpec("cpnas")


def test_unique_keeps_one_spec_per_folder():
    a = R.RunSpec("a", genotype=DARTS_V2)
    assert R.unique([a, R.RunSpec("a", genotype="other.json"), R.RunSpec("b", genotype=DARTS_V2)], "smoke") == \
        [a, R.RunSpec("b", genotype=DARTS_V2)]


def test_recorded_cost_sums_what_the_runs_recorded(tmp_path, monkeypatch):
    import json

    monkeypatch.setenv("CPNAS_HOME", str(tmp_path))
    (tmp_path / "pyproject.toml").write_text("")
    for rel, name, seconds in (("ablation/search/cpnas/seed0", "cost.json", 600.0),
                               ("ablation/train/cpnas/seed0", "metrics.json", 300.0),
                               ("ablation/train/loss-x/seed0/parent", "metrics.json", 60.0),
                               ("train/imagenet-cpnas-binary-star/seed1", "metrics.json", 720.0),
                               ("proxy/train/random-s0/cpu/seed0", "metrics.json", 999.0)):  # not make reproduce's
        d = tmp_path / "results" / "cpu" / rel
        d.mkdir(parents=True)
        (d / name).write_text(json.dumps({"wall_clock_s": seconds}))
    rows = R.recorded_cost("cpu")
    assert sorted(r["seconds"] for r in rows) == [60.0, 300.0, 600.0, 720.0]
    assert {(r["study"], r["kind"]) for r in rows} == {("ablation", "search"), ("ablation", "train"),
                                                       ("notebooks", "train")}
    text = R.cost_summary("cpu", jobs=2)
    assert "total: 4 runs, 0.47 h" in text and "≈ 0.23 h" in text


def test_require_finished_says_what_to_run_when_nothing_is_finished():
    from cpnas.errors import CpnasError
    from cpnas.runs import require_finished

    rows = [{"top1": 30.0}]
    assert require_finished(rows, "Table 1 runs", "smoke") is rows
    with pytest.raises(CpnasError, match="no finished Table 1 runs at scale 'smoke'.*CPNAS_COMPUTE=1"):
        require_finished([], "Table 1 runs", "smoke")
    with pytest.raises(CpnasError, match="make reproduce SCALE=smoke"):
        require_finished({}, "Table 2 trainings", "smoke")


def test_compare_pairs_the_runs_both_checkouts_finished(tmp_path, monkeypatch, capsys):
    import json

    here, there = tmp_path / "here", tmp_path / "there"
    monkeypatch.setenv("CPNAS_HOME", str(here))

    def put(root, rel, name, obj):
        d = root / "results" / "cpu" / rel
        d.mkdir(parents=True, exist_ok=True)
        (d / name).write_text(json.dumps(obj))

    for root, top1s, op in ((here, (30.0, 34.0, 36.0), "sep_conv_3x3"), (there, (31.5, 33.0, 99.0), "skip_connect")):
        put(root, "ablation/train/cpnas/seed0", "metrics.json", {"top1": top1s[0]})
        put(root, "ablation/train/cpnas/seed1", "metrics.json", {"top1": top1s[1]})
        put(root, "train/imagenet-cpnas-binary-star/seed0", "metrics.json", {"top1": 40.0})
        put(root, "ablation/search/cpnas/seed0", "genotype.json", {"normal": [[op, 0, 2]]})
        put(root, "ablation/search/cpnas/seed1", "genotype.json", {"normal": [["max_pool_3x3", 0, 2]]})
    put(here, "ablation/train/bnas/seed0", "metrics.json", {"top1": 36.0})  # not re-run there: left out
    rows = R.compare(there, "cpu")
    trains = {r["run"]: r["difference"] for r in rows if r["kind"] == "train"}
    assert trains == {"ablation/train/cpnas/seed0": 1.5, "ablation/train/cpnas/seed1": -1.0,
                      "train/imagenet-cpnas-binary-star/seed0": 0.0}
    assert {r["run"]: r["same genotype"] for r in rows if r["kind"] == "search"} == \
        {"ablation/search/cpnas/seed0": False, "ablation/search/cpnas/seed1": True}
    text = R.compare_summary(rows)
    assert "+0.17 ± 1.26 points (mean ± std over 3 runs" in text and "same genotype: 1 of 2" in text
    assert R.main(["--compare", str(there)]) == 0 and "1 of 2" in capsys.readouterr().out
    assert R.main(["--compare", str(tmp_path / "nowhere")]) == 2
    assert "no results/cpu under" in capsys.readouterr().err


def test_each_stage_finds_loads_and_keys_a_committed_run():
    """SEARCH and TRAIN (cpnas.runs): the folder, is_finished, load and key of committed finished runs."""
    from cpnas.genotype import Genotype, load_genotype
    from cpnas.runs import SEARCH, TRAIN

    spec = next(s for s in C.specs(C.all_cells(SCALE)) if s.is_done(SCALE) and s.search is None)
    folder = TRAIN.folder(spec, SCALE)
    assert folder == spec.out(SCALE) and TRAIN.is_finished(folder) and not TRAIN.is_finished(folder / "nope")
    metrics = TRAIN.load(folder)
    assert TRAIN.key(spec, get_config(SCALE), Genotype.from_dict(metrics["genotype"])) == metrics["run"]
    assert TRAIN.key(spec, get_config(SCALE), DARTS_V2 if metrics["genotype"] != DARTS_V2.to_dict()
                     else C.uniform_genotype(0)) != metrics["run"]  # another cell is another run
    search = table2_runs((0,))["CP-NAS*"][0].search
    found = SEARCH.folder(search, SCALE)
    assert found == R.search_dir(SCALE, "cpnas", 0) and SEARCH.is_finished(found)
    assert SEARCH.load(found).genotype == load_genotype(found / R.GENOTYPE)
    assert set(SEARCH.key(search, get_config(SCALE))) == {"search", "data"}


def test_the_stored_keys_of_committed_runs_are_the_keys_asked_for_today():
    """The cache keys (cpnas.runs.keys) of the committed searches and of the trainings at today's presets equal
    what their folders stored, so a resumed study loads them instead of computing them again.

    Searches: every committed search of a study spec (notebooks, ablation, search ranking, strategy
    comparison). Trainings:
    the ablation's (Table 1 and Fig. 6), the cell benchmark's and the notebooks'; the proxy and recipe
    runs predate today's cpu preset and are refused with one line (test above).
    """
    from cpnas.genotype import Genotype
    from cpnas.io import read_json
    from cpnas.runs import SEARCH, TRAIN, search_key

    committed = _committed_runs(SCALE)
    base = get_config(SCALE)
    specs = _study_specs(SCALE)
    searches = {s.search.out(SCALE): s.search for s in specs if s.search is not None}
    searches |= {k.out(SCALE): k.spec for k in K.searches(tuple(K.BUDGETS), (0, 1, 2))}
    searches |= _comparison_searches(SCALE)
    checked = 0
    for folder, search in searches.items():
        if folder in committed:
            assert SEARCH.key(search, base) == search_key(read_json(folder / R.CONFIG)["config"]), folder
            checked += 1
    assert checked >= len({p for p in committed if (p / R.COMPLETE).exists()})
    studies = (A.STUDY, C.STUDY, "train")
    trained = 0
    for spec in R.unique(specs, SCALE):
        folder = spec.out(SCALE)
        if folder in committed and folder.relative_to(R.study_dir(SCALE)).parts[0] in studies:
            metrics = TRAIN.load(folder)
            assert TRAIN.key(spec, base, Genotype.from_dict(metrics["genotype"])) == metrics["run"], folder
            trained += 1
    assert trained == len({p for p in committed if (p / R.METRICS).exists()
                           and p.relative_to(R.study_dir(SCALE)).parts[0] in studies})


def test_run_searches_computes_each_unfinished_search_once_then_the_study_stage(tmp_path, monkeypatch):
    """cpnas.runs.run_searches: one job per search folder whose study stage is unfinished; in the job, the search
    (computed or loaded), then the stage on its result, unless the stage finished meanwhile."""
    from cpnas import parallel
    from cpnas.io import LOCK
    from cpnas.runs import execute

    monkeypatch.setenv("CPNAS_HOME", str(tmp_path))
    marker = "scored.json"
    calls = []
    stage = R.Stage("scoring", lambda search, scale: search.out(scale), lambda search, cfg: {},
                    lambda folder: (folder / marker).exists(), lambda folder: None,
                    lambda search, cfg, result, **kw: calls.append((search.seed, result, kw)))
    a, b = R.SearchSpec("random", seed=0, dataset="synthetic"), R.SearchSpec("random", seed=1, dataset="synthetic")
    cfg = get_config("smoke")
    b.out("smoke").mkdir(parents=True)
    (b.out("smoke") / marker).write_text("{}")  # b's stage is finished: no job
    jobs = []
    monkeypatch.setattr(parallel, "run_jobs", lambda js, **k: jobs.append((js, k["names"])))
    R.run_searches([a, b, a], cfg, then=stage, names=["a", "b", "a again"])
    assert [[(fn.__name__, kw["search"], kw["then"]) for fn, kw in js] for js, _ in jobs] == \
        [[("_search_then", a, stage)]]
    assert jobs[0][1] == ["a"]
    jobs.clear()
    R.run_searches([a, b], cfg)  # no stage: a search is done when it finished (complete.json)
    assert [kw["search"] for fn, kw in jobs[0][0]] == [a, b]

    monkeypatch.setattr(execute, "search_of", lambda search, cfg, **kw: f"result of seed {search.seed}")
    execute._search_then(a, cfg, None, "cpu", stage)
    assert calls == [(0, "result of seed 0", {"data_root": None, "device": "cpu"})]
    execute._search_then(b, cfg, None, "cpu", stage)  # finished meanwhile: the search is loaded, the stage not rerun
    assert len(calls) == 1 and not (a.out("smoke") / LOCK).exists()  # the lock is released
