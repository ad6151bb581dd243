"""The training recipe of the cpu scale: optimizer groups, per-step cosine, validation split, sweep."""

from __future__ import annotations

import pytest
import torch

from cpnas import data
from cpnas.binary import BINARY, BinaryConv2d
from cpnas.config import get_config
from cpnas.errors import CpnasError
from cpnas.genotype import DARTS_V2
from cpnas.networks import NetworkCIFAR
from cpnas.train import cosine_lr, make_optimizer, param_groups


def test_binary_latent_weights_get_their_own_weight_decay():
    net = NetworkCIFAR(DARTS_V2, C=4, layers=3, auxiliary=False, precision=BINARY)
    groups = {g["group"]: g for g in param_groups(net, 3e-4, 0.0)}
    binary = {id(m.weight) for m in net.modules() if isinstance(m, BinaryConv2d)}
    assert {id(p) for p in groups["binary"]["params"]} == binary and groups["binary"]["weight_decay"] == 0.0
    assert groups["real"]["weight_decay"] == 3e-4
    assert not binary & {id(p) for p in groups["real"]["params"]}
    assert sum(p.numel() for g in groups.values() for p in g["params"]) == sum(p.numel() for p in net.parameters())
    assert isinstance(make_optimizer(net, "adam", lr=1e-3, momentum=0.9, weight_decay=0, binary_weight_decay=0),
                      torch.optim.Adam)
    with pytest.raises(CpnasError, match="unknown optimizer"):
        make_optimizer(net, "lamb", lr=1e-3, momentum=0.9, weight_decay=0, binary_weight_decay=0)


def test_adam_moves_latent_weights_far_more_than_the_papers_sgd():
    """The reason for the cpu recipe: sign flips need the latent weights to move."""
    moved = {}
    for kind, lr in (("sgd", 0.025), ("adam", 5e-3)):
        torch.manual_seed(0)
        net = NetworkCIFAR(DARTS_V2, C=4, layers=3, auxiliary=False, precision=BINARY)
        opt = make_optimizer(net, kind, lr=lr, momentum=0.9, weight_decay=0.0, binary_weight_decay=0.0)
        w0 = torch.cat([m.weight.detach().flatten().clone() for m in net.modules() if isinstance(m, BinaryConv2d)])
        x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))
        for _ in range(5):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x)[0], y).backward()
            opt.step()
        w1 = torch.cat([m.weight.detach().flatten() for m in net.modules() if isinstance(m, BinaryConv2d)])
        moved[kind] = ((w1 - w0).abs().mean() / w0.abs().mean()).item()
    assert moved["adam"] > 10 * moved["sgd"]


def test_per_step_cosine_reaches_the_floor(tmp_path):
    from cpnas.evaluation import train_genotype
    from cpnas.io import read_json

    cfg = get_config("smoke", {"cifar.epochs": 2, "cifar.lr_schedule": "cosine_step", "cifar.lr": 0.01,
                               "data.synthetic_train": 400, "cifar.train_fraction": 0.1})
    train_genotype(DARTS_V2, cfg, out=tmp_path / "t", dataset="synthetic", loss="ce", device="cpu")
    from cpnas.io import load_checkpoint

    hist = read_json(tmp_path / "t" / "history.json")
    assert hist[0]["lr"] == 0.01  # the epoch record keeps the epoch-start rate
    steps = 2  # 40 images at batch 32 per epoch
    last = load_checkpoint(tmp_path / "t" / "checkpoint.pt")["optimizer"]["param_groups"][0]["lr"]
    assert last == pytest.approx(cosine_lr(0.01, 0.0, 2 * steps - 1, 2 * steps))  # set before the last step
    assert last < 0.005  # per epoch it would still be the epoch-start rate 0.005


def test_validation_split_is_held_out_and_fixed():
    labels = torch.arange(10).repeat(100)
    tr0, val0 = data.train_val_split(1000, 0.5, 0.1, seed=0, labels=labels)
    tr1, val1 = data.train_val_split(1000, 0.5, 0.1, seed=1, labels=labels)
    assert torch.equal(val0, val1)  # the same validation images for every seed
    assert not set(tr0.tolist()) & set(val0.tolist()) and not set(tr1.tolist()) & set(val1.tolist())
    assert len(tr0) == 500 and len(val0) == 100 and not torch.equal(tr0, tr1)
    assert torch.bincount(labels[val0]).tolist() == [10] * 10  # stratified
    same, none = data.train_val_split(1000, 0.5, 0.0, seed=3, labels=labels)
    assert none is None and torch.equal(same, data.fraction_indices(1000, 0.5, 3, labels=labels))
    with pytest.raises(CpnasError, match="sum to at most 1"):
        data.train_val_split(1000, 0.95, 0.1, seed=0)


def test_validation_split_avoids_the_seed0_search_images():
    labels = torch.arange(10).repeat(500)
    _, val = data.train_val_split(5000, 0.4, 0.04, seed=0, labels=labels)
    fit, score = data.search_split(5000, 0.02, 0.2, seed=0, labels=labels)
    assert not set(val.tolist()) & (set(fit.tolist()) | set(score.tolist()))
    held_out = data.validation_indices(5000, 0.04, labels=labels)
    assert torch.equal(held_out, val)
    # the seed-0 search is unchanged by holding the validation split out; every other seed avoids it too
    assert all(torch.equal(a, b) for a, b in zip((fit, score), data.search_split(5000, 0.02, 0.2, 0, labels=labels,
                                                                             exclude=held_out)))
    for seed in (1, 3):
        fit, score = data.search_split(5000, 0.02, 0.2, seed, labels=labels, exclude=held_out)
        assert not set(val.tolist()) & (set(fit.tolist()) | set(score.tolist()))
        assert len(fit) == 100 and len(score) == 1000


def test_training_reports_validation_accuracy(tmp_path):
    from cpnas.evaluation import train_genotype

    cfg = get_config("smoke", {"cifar.val_fraction": 0.1, "data.synthetic_train": 300,
                               "cifar.train_fraction": 0.2})
    m = train_genotype(DARTS_V2, cfg, out=tmp_path / "t", dataset="synthetic", loss="ce", device="cpu")
    assert m["val_images"] == 30 and 0 <= m["val_top1"] <= 100
    assert m["threads"] >= 1


@pytest.mark.parametrize("module, argv, expected", [
    ("recipe", ["--variants", "paper-sgd,adam-2e-3", "--seeds", "0,1"],
     lambda m: m.specs("cpu", ["paper-sgd", "adam-2e-3"], [0, 1])),
    ("recipe", ["--variants", "adam-2e-3", "--full", "--cell", "cpnas-s0"],
     lambda m: m.specs("cpu", ["adam-2e-3"], [0], full=True, cell="cpnas-s0")),
    ("proxy", ["--cells", "darts_v2,random-s1", "--budgets", "long,cpu"],
     lambda m: m.specs("cpu", [m.ProxyCell("darts_v2"), m.ProxyCell("random", 1)], ["long", "cpu"])),
    ("cellbench", ["--cells", "darts_v2", "--no-replicates"],
     lambda m: m.specs(m.fixed_cells()[:1], replicates=False)),
])
def test_study_clis_hand_their_specs_to_the_one_runner(tmp_path, monkeypatch, module, argv, expected):
    """The recipe sweep, the proxy check and the cell benchmark compute through cpnas.runs.run_all (its cache,
    its workers), with their specs in the study's order, then write their table from the finished runs."""
    import importlib

    from cpnas import runs

    monkeypatch.setenv("CPNAS_HOME", str(tmp_path))
    study = importlib.import_module(f"cpnas.{module}")
    calls = []
    monkeypatch.setattr(runs, "run_all", lambda specs, cfg, **kw: calls.append((list(specs), cfg.scale, kw)))
    assert study.main([*argv, "--jobs", "2"]) == 0
    (specs, scale, kw), = calls
    assert specs == expected(study) and scale == "cpu" and kw["workers"] == 2 and kw["load"] is False
    assert len(kw["names"]) == len(specs) and len(set(kw["names"])) == len(specs)


@pytest.mark.parametrize("module, argv", [
    ("recipe", ["--variants", "adam-1"]), ("recipe", ["--seeds", "x"]), ("recipe", ["--jobs", "0"]),
    ("proxy", ["--cells", "darts_v3"]), ("proxy", ["--budgets", "huge"]), ("proxy", ["--jobs", "0"]),
    ("ablation.__main__", ["--seeds", "-1"]), ("ablation.__main__", ["--scale", "huge"]),
])
def test_study_clis_refuse_bad_input_in_one_line(capsys, module, argv):
    import importlib

    main = importlib.import_module(f"cpnas.{module}").main
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


def test_sweep_table_marks_the_variant_with_the_best_validation(monkeypatch, tmp_path):
    from cpnas import recipe

    rows = [{"recipe": "a", "stage": "sweep", "val_top1": 30.0}, {"recipe": "b", "stage": "sweep", "val_top1": 40.0},
            {"recipe": "a", "stage": "full", "val_top1": 90.0}, {"recipe": "b", "stage": "sweep", "val_top1": 38.0}]
    assert recipe.chosen_variant(rows) == "b"  # full-budget runs never decide
    assert recipe.chosen_variant([]) is None


def test_kendall_tau_with_interval():
    from cpnas.proxy import correlations, kendall

    out = kendall([1, 2, 3, 4, 5, 6], [1.5, 2.5, 2.9, 4.1, 5.5, 6.2])
    assert out["tau"] == pytest.approx(1.0) and out["n"] == 6 and out["p"] < 0.01
    assert out["ci_low"] <= 1.0 <= out["ci_high"] + 1e-12
    assert kendall([1, 2], [2, 1])["tau"] is None
    rows = [{"top1_cpu": c, "top1_long": l, "search_indicator": i}
            for c, l, i in ((30, 40, float("nan")), (35, 45, 0.3), (20, 50, 0.2), (25, 30, None))]
    tau = correlations(rows)
    assert tau["(a) cpu vs long budget (3×)"]["n"] == 4
    assert tau["(a) short vs cpu budget (3×)"]["n"] == 0  # no row has top1_short
    assert tau["(b) search indicator vs cpu top-1"]["n"] == 2  # NaN and None are not indicators


def test_reference_indicator_averages_round0_zbar_over_the_cells_ops(monkeypatch, tmp_path):
    """A cell's indicator is the mean round-0 z̄ of its (edge, op) pairs, normal and reduction."""
    from cpnas import proxy
    from cpnas.genotype import cell_edges, genotype_from_ops
    from cpnas.io import write_json

    edges = cell_edges()
    zbar = {kind: [{"skip_connect": 0.1 * (e + 1) + (kind == "reduce"), "max_pool_3x3": 0.5}
                   for e in range(len(edges))]
            for kind in ("normal", "reduce")}
    write_json(tmp_path / "indicator.json", {"rounds": [{"mean_z": zbar}]})
    monkeypatch.setattr(proxy, "search_dir", lambda scale, cell: tmp_path)
    g = genotype_from_ops(["skip_connect"] + ["none"] * 13, ["max_pool_3x3"] + ["none"] * 13)
    assert proxy.reference_indicator("cpu", g) == pytest.approx((0.1 + 0.5) / 2)
    bad = genotype_from_ops(["sep_conv_3x3"] + ["none"] * 13, ["max_pool_3x3"] + ["none"] * 13)
    with pytest.raises(CpnasError, match="no round-0"):
        proxy.reference_indicator("cpu", bad)


def test_budgets_differ_only_in_epochs():
    from cpnas.proxy import budget_config

    cpu = get_config("cpu")
    assert budget_config("cpu", "cpu") == cpu
    assert budget_config("cpu", "short").cifar.epochs == max(1, cpu.cifar.epochs // 3)
    assert budget_config("cpu", "long").cifar.epochs == 3 * cpu.cifar.epochs
    with pytest.raises(CpnasError, match="unknown budget"):
        budget_config("cpu", "huge")


def test_darts_v2_constant_is_the_published_genotype():
    from pathlib import Path

    from cpnas.genotype import load_genotype

    assert DARTS_V2 == load_genotype(Path(__file__).parent / "data" / "darts_v2.json")
