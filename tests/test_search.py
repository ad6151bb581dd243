"""The Child-Parent search (Alg. 1), its baselines, the search loop, resume and the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
import torch

from cpnas.cli import main
from cpnas.config import get_config
from cpnas.genotype import load_genotype
from cpnas.indicator import edge_indicator, indicator_score
from cpnas.ops import PRIMITIVES
from cpnas.runs import search_or_load
from cpnas.search import run_search
from cpnas.strategies import CPNAS, cpnas_schedule
from cpnas.strategy_base import STRATEGIES, SearchContext, get_strategy, strategy_names

# A search small enough for a unit test: 4 cells of 4 channels, 20 training and 10
# scoring images of synthetic data, T = 1 (35 epochs).
TINY = {"search.layers": 4, "search.init_channels": 4, "search.reduction_layers": "1,2",
        "search.batch_size": 32, "search.train_fraction": 0.05, "search.score_fraction": 0.025,
        "data.synthetic_train": 400, "search.T": 1}


def tiny_cfg(**extra):
    return get_config("smoke", {**TINY, **extra})


class ListLoader(list):
    def set_epoch(self, epoch):
        pass


def tiny_ctx(beta_p=2.0, seed=0, T=1):
    cfg = tiny_cfg(**{"search.T": T})
    batch = [(torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3]))]
    return SearchContext(cfg=cfg, device=torch.device("cpu"), train_loader=ListLoader(batch),
                         score_loader=ListLoader(batch), num_classes=10, seed=seed, beta_p=beta_p)


def test_paper_schedule_has_105_epochs():
    assert len(cpnas_schedule(8, 3)) == 105  # §3.1: (8+7+6+5+4+3+2)·3
    assert [s["K"] for s in cpnas_schedule(3, 2)] == [3] * 6 + [2] * 4


def test_dry_run_reports_105_epochs_at_paper_scale(capsys):
    assert main(["search", "--scale", "paper", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "search epochs: 105" in out
    assert '"batch_size": 512' in out


PAPER_EPOCHS = {"cpnas": 105, "bnas": 105, "pcdarts": 50, "random": 0, "rs": 315}
"""The paper's schedules (§3.1; PC-DARTS §4.2; random search: 2L epochs of training, then L of scoring,
L = CP-NAS's epochs)."""


@pytest.mark.parametrize("strategy", strategy_names())
def test_dry_run_of_every_strategy_prints_its_plan(capsys, strategy):
    assert main(["search", "--strategy", strategy, "--scale", "paper", "--dry-run"]) == 0
    epochs = len(get_strategy(strategy).plan(get_config("paper"))[0])
    assert f"search epochs: {epochs}" in capsys.readouterr().out
    assert epochs == PAPER_EPOCHS.get(strategy, epochs)


def test_every_op_is_drawn_exactly_once_per_edge_in_K_draws():
    strat = CPNAS(tiny_ctx())
    for t in range(2):  # two passes: a fresh permutation each time
        drawn = {kind: [Counter() for _ in strat.edges] for kind in ("normal", "reduce")}
        for draw in range(len(PRIMITIVES)):
            path = strat.sample_path(draw)
            for kind in drawn:
                for e, op in enumerate(path.cell(kind)):
                    drawn[kind][e][op] += 1
        for kind in drawn:
            for counter in drawn[kind]:
                assert counter == Counter(PRIMITIVES)


def test_draws_respect_the_shrunken_pools():
    strat = CPNAS(tiny_ctx())
    strat.pools.remove("normal", 0, "none")
    strat.pools.remove("normal", 0, "skip_connect")
    for kind in ("normal", "reduce"):
        for e in range(len(strat.edges)):
            if (kind, e) != ("normal", 0):
                strat.pools.remove(kind, e, "max_pool_3x3")
                strat.pools.remove(kind, e, "avg_pool_3x3")
    seen = {strat.sample_path(d).normal[0] for d in range(6)}
    assert seen == set(PRIMITIVES) - {"none", "skip_connect"}


def test_eq1_and_eq2():
    assert indicator_score(0.5, 0.8, 2.0) == pytest.approx(0.5 + 2 * 0.3)
    assert indicator_score(0.5, 0.8, 0.0) == 0.5
    ind = edge_indicator({"a": 1.0, "b": 0.0})
    assert ind["a"] == pytest.approx(torch.e / (torch.e + 1))
    assert sum(ind.values()) == pytest.approx(1.0)


def test_round_end_removes_the_op_with_the_lowest_indicator():
    strat = CPNAS(tiny_ctx())
    for kind in ("normal", "reduce"):
        for e in range(len(strat.edges)):
            for k, op in enumerate(PRIMITIVES):
                strat.scores[kind][e][op] = [k / 10, k / 10 + 0.1]  # 'none' has the lowest mean
    strat.scores["normal"][3]["sep_conv_5x5"] = [-1.0, -1.0]
    removed = strat._end_round(0, epoch=23)
    assert removed["normal"][3] == "sep_conv_5x5"
    assert removed["normal"][0] == "none" and set(removed["reduce"]) == {"none"}
    assert strat.pools.K == 7
    assert "sep_conv_5x5" not in strat.pools.pool("normal", 3)
    rnd = strat.rounds[-1]
    assert sum(rnd["indicator"]["normal"][0].values()) == pytest.approx(1.0)


def test_bnas_is_cpnas_with_beta_p_zero():
    assert issubclass(STRATEGIES["bnas"], STRATEGIES["cpnas"])
    assert STRATEGIES["bnas"](tiny_ctx(beta_p=2.0)).beta_p == 0.0
    assert not STRATEGIES["bnas"](tiny_ctx()).trains_parent
    assert CPNAS(tiny_ctx(beta_p=0.5)).trains_parent


def test_unknown_strategy_is_a_clear_error(capsys):
    from cpnas.errors import CpnasError
    with pytest.raises(CpnasError, match="unknown strategy 'foo'"):
        get_strategy("foo")


@pytest.fixture(scope="module")
def finished_cpnas(tmp_path_factory):
    out = tmp_path_factory.mktemp("cpnas") / "run"
    result = run_search("cpnas", tiny_cfg(), dataset="synthetic", seed=3, out=out, device="cpu")
    return result


@pytest.mark.slow
@pytest.mark.parametrize("strategy", strategy_names())
def test_every_strategy_writes_the_artifacts_it_names_and_summarizes_its_search(strategy, finished_cpnas, tmp_path):
    """A tiny search of each strategy writes its ``artifact_files``, listed in complete.json, and its own
    ``search_summary`` reads them back (the proxy study's columns)."""
    out = finished_cpnas.out if strategy == "cpnas" else tmp_path / strategy
    if strategy != "cpnas":
        run_search(strategy, tiny_cfg(**{"search.pc_epochs": 2, "search.pc_warmup_epochs": 1}),
                   dataset="synthetic", seed=3, out=out, device="cpu")
    cls = get_strategy(strategy)
    listed = json.loads((out / "complete.json").read_text())["files"]
    assert set(listed) - {"config.json", "genotype.json", "cost.json", "history.json"} == set(cls.artifact_files)
    assert all((out / name).is_file() for name in listed)
    summary = cls.search_summary(out)
    assert set(summary) <= {"own_search_indicator", "search_child_acc", "median_snr"}
    assert (summary != {}) == (strategy in {"cpnas", "bnas", "pcdarts"})


@pytest.mark.slow
def test_search_writes_every_artifact(finished_cpnas):
    out = finished_cpnas.out
    for name in ("config.json", "history.json", "genotype.json", "cost.json", "indicator.json", "checkpoint.pt"):
        assert (out / name).is_file(), name
    history = json.loads((out / "history.json").read_text())
    assert len(history) == 35
    first = history[0]
    for key in ("round", "t", "draw", "path", "A_C", "A_P", "z", "child_train_loss", "parent_train_loss",
                "wall_clock", "lr"):
        assert key in first, key
    assert first["z"] == pytest.approx(first["A_C"] + 2.0 * (first["A_P"] - first["A_C"]))
    indicator = json.loads((out / "indicator.json").read_text())
    assert len(indicator["rounds"]) == 7  # K = 8 → 1
    g = load_genotype(out / "genotype.json")
    assert g == finished_cpnas.genotype
    # the default top2 reading: each intermediate node keeps at most its two best incoming edges
    assert len(g.normal) <= 8 and len(g.reduce) <= 8
    assert all(sum(1 for e in g.normal if e[2] == node) <= 2 for node in range(2, 6))
    final = [h for h in history if "removed" in h][-1]
    assert history[-1]["lr"] < history[0]["lr"]  # cosine schedule
    assert final["K"] == 2
    cost = json.loads((out / "cost.json").read_text())
    assert cost["device"] == "cpu" and cost["wall_clock_s"] > 0 and cost["epochs"] == 35


@pytest.mark.slow
def test_bnas_search_equals_cpnas_with_beta_zero(tmp_path):
    a = run_search("bnas", tiny_cfg(), dataset="synthetic", seed=1, out=tmp_path / "bnas", device="cpu")
    b = run_search("cpnas", tiny_cfg(), dataset="synthetic", seed=1, out=tmp_path / "cp0", device="cpu",
                   beta_p=0.0)
    assert a.genotype == b.genotype
    assert [h["A_C"] for h in a.history] == [h["A_C"] for h in b.history]
    assert [h["z"] for h in a.history] == [h["A_C"] for h in a.history]
    assert all(h["A_P"] is None for h in a.history)


def test_refuses_to_overwrite_a_search(finished_cpnas):
    from cpnas.errors import CpnasError
    with pytest.raises(CpnasError, match="--resume"):
        run_search("cpnas", tiny_cfg(), dataset="synthetic", seed=3, out=finished_cpnas.out, device="cpu")


def test_search_or_load_reuses_a_finished_search(finished_cpnas, monkeypatch):
    import cpnas.search as search_module
    monkeypatch.setattr(search_module, "run_search", lambda *a, **k: pytest.fail("searched again"))
    again = search_or_load("cpnas", tiny_cfg(), seed=3, dataset="synthetic", out=finished_cpnas.out)
    assert again.genotype == finished_cpnas.genotype
    assert search_or_load("cpnas", tiny_cfg(), seed=3, dataset="synthetic", out=finished_cpnas.out,
                          compute=False).genotype == finished_cpnas.genotype


def test_search_or_load_without_compute_never_searches(tmp_path, monkeypatch):
    import cpnas.search as search_module
    from cpnas.errors import CpnasError

    monkeypatch.setattr(search_module, "run_search", lambda *a, **k: pytest.fail("searched with compute=False"))
    with pytest.raises(CpnasError, match="no finished cpnas search.*CPNAS_COMPUTE=1"):
        search_or_load("cpnas", tiny_cfg(), seed=3, dataset="synthetic", out=tmp_path / "none", compute=False)


def test_resume_refuses_another_configuration(finished_cpnas, tmp_path):
    import shutil

    from cpnas.errors import CpnasError
    out = tmp_path / "copy"
    shutil.copytree(finished_cpnas.out, out)
    (out / "genotype.json").unlink()
    with pytest.raises(CpnasError, match="another configuration"):
        run_search("cpnas", tiny_cfg(**{"search.lr": 0.1}), dataset="synthetic", seed=3, out=out,
                   device="cpu", resume=True)


@pytest.mark.slow
def test_random_strategy_is_seeded_and_trains_nothing(tmp_path):
    a = run_search("random", tiny_cfg(), dataset="synthetic", seed=5, out=tmp_path / "a", device="cpu")
    b = run_search("random", tiny_cfg(), dataset="synthetic", seed=5, out=tmp_path / "b", device="cpu")
    c = run_search("random", tiny_cfg(), dataset="synthetic", seed=6, out=tmp_path / "c", device="cpu")
    assert a.genotype == b.genotype != c.genotype
    assert a.history == []


@pytest.mark.slow
def test_sigkill_and_resume_gives_the_uninterrupted_result(tmp_path, finished_cpnas):
    """A search killed with SIGKILL mid-run and resumed ends exactly like an uninterrupted one."""
    out = tmp_path / "killed"
    args = ["search", "--strategy", "cpnas", "--scale", "smoke", "--dataset", "synthetic", "--seed", "3",
            "--device", "cpu", "--out", str(out)]
    for key, value in TINY.items():
        args += ["--set", f"{key}={value}"]
    env = {**os.environ, "CPNAS_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "cpnas", "-q", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    try:
        while time.time() < deadline:
            hist = out / "history.json"
            if hist.exists() and len(json.loads(hist.read_text() or "[]")) >= 12:
                break
            if proc.poll() is not None:
                pytest.fail("the search ended before it could be killed")
            time.sleep(0.2)
        else:
            pytest.fail("the search made no progress")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (out / "genotype.json").exists()
    torch.set_num_threads(1)
    assert main([*args, "--resume"]) == 0
    resumed = json.loads((out / "history.json").read_text())
    reference = finished_cpnas.history
    def strip(hs):  # timings differ between any two runs
        return [{k: v for k, v in h.items() if k != "wall_clock" and not k.endswith("seconds")} for h in hs]
    assert strip(resumed) == strip(reference)
    assert load_genotype(out / "genotype.json") == finished_cpnas.genotype
    assert json.loads((out / "indicator.json").read_text())["rounds"] == \
        json.loads((finished_cpnas.out / "indicator.json").read_text())["rounds"]


def test_cli_rejects_bad_input(tmp_path, capsys):
    assert main(["search", "--scale", "smoke", "--dataset", "cifar10", "--data", str(tmp_path / "nope"),
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and err[0].startswith("cpnas search: error:") and "nope" in err[0]
    assert main(["search", "--scale", "smoke", "--set", "search.bogus=1", "--dry-run"]) == 2
    assert "unknown config key" in capsys.readouterr().err
    assert main(["search", "--strategy", "bnas", "--beta-p", "1", "--dry-run"]) == 2
    assert main(["search", "--scale", "smoke"]) == 2  # --out missing


def test_a_search_killed_while_writing_its_artifacts_is_resumed_not_loaded(finished_cpnas, tmp_path):
    """Only complete.json, written last, marks a search finished."""
    import shutil

    from cpnas.errors import CpnasError
    from cpnas.search import COMPLETE, load_search

    out = tmp_path / "killed"
    shutil.copytree(finished_cpnas.out, out)
    (out / COMPLETE).unlink()
    (out / "indicator.json").unlink()  # killed after cost.json, before indicator.json
    with pytest.raises(CpnasError, match="no finished search"):
        load_search(out)
    again = search_or_load("cpnas", tiny_cfg(), seed=3, dataset="synthetic", out=out, device="cpu")
    assert again.genotype == finished_cpnas.genotype
    assert (out / "indicator.json").is_file() and (out / COMPLETE).is_file()


@pytest.mark.parametrize("change, message", [({"beta_p": 0.5}, "beta_p 2.0, not 0.5"),
                                             ({"dataset": "cifar10", "data_root": "nowhere"},
                                              "dataset 'synthetic', not 'cifar10'")])
def test_resume_refuses_another_run_identity(finished_cpnas, tmp_path, change, message):
    import shutil

    from cpnas.errors import CpnasError
    from cpnas.search import COMPLETE

    out = tmp_path / "copy"
    shutil.copytree(finished_cpnas.out, out)
    (out / COMPLETE).unlink()
    kwargs = {"dataset": "synthetic", "seed": 3, "out": out, "device": "cpu", "resume": True, **change}
    with pytest.raises(CpnasError, match=message):  # before any data loads: 'nowhere' is never opened
        run_search("cpnas", tiny_cfg(), **kwargs)
