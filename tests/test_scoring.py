"""Scoring sampled paths: order-independent scores, the indicator's readings, its noise, the Parent's ReLU."""

from __future__ import annotations

import math

import pytest
import torch

from cpnas.binary import REAL, REAL_RELU, ReLUConv2d
from cpnas.config import get_config
from cpnas.indicator import indicator_coefficients, indicator_noise, indicator_score, round_noise
from cpnas.networks import SearchNetwork
from cpnas.space import SampledPath
from cpnas.strategies import CPNAS
from cpnas.strategy_base import SearchContext
from cpnas.train import recalibrate_bn

TINY = {"search.layers": 3, "search.init_channels": 4, "search.reduction_layers": "1",
        "search.batch_size": 16, "search.T": 1, "search.calibration_batches": 2}


class ListLoader(list):
    def set_epoch(self, epoch):
        pass


def _class_data(n_per_class=24, classes=4, seed=0):
    """Images whose class shifts the mean of one colour channel: learnable in a few steps."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(classes).repeat_interleave(n_per_class)
    x = torch.randn(len(y), 3, 16, 16, generator=g)
    x[:, y % 3] += 0.0  # no-op for clarity; the signal is below
    for c in range(classes):
        x[y == c, c % 3] += 1.5 * (1 + c // 3)
    return x, y


def _batches(x, y, size):
    return ListLoader((x[i:i + size], y[i:i + size]) for i in range(0, len(y), size))


def _strategy(score_x, score_y, train):
    cfg = get_config("smoke", TINY)
    ctx = SearchContext(cfg=cfg, device=torch.device("cpu"), train_loader=train,
                        score_loader=_batches(score_x, score_y, 16), num_classes=4, seed=0, beta_p=2.0)
    return CPNAS(ctx)


def test_score_does_not_depend_on_the_class_order_of_the_score_split():
    """A class-sorted score split (as image folders store it) must score like a shuffled one.

    With batch-statistic BN (the code before BN re-estimation) a batch of 16 sorted images holds one
    class, BN removes exactly the per-class shift the net learned, and the scores differ.
    """
    x, y = _class_data()
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(1))
    train = _batches(x[perm], y[perm], 16)
    sorted_run = _strategy(x, y, train)  # class by class
    shuffled_run = _strategy(x[perm], y[perm], train)
    a = sorted_run.run_epoch(0)
    b = shuffled_run.run_epoch(0)
    assert a["child_train_loss"] == b["child_train_loss"]  # same training: only the score order differs
    assert a["A_C"] == b["A_C"] and a["A_P"] == b["A_P"]
    assert a["A_P"] > 0.25  # the Parent learned something, so batch statistics would matter


def test_search_score_loader_mixes_classes():
    from cpnas.search import search_data

    cfg = get_config("smoke", {"data.synthetic_train": 2000, "search.train_fraction": 0.1,
                               "search.score_fraction": 0.1, "search.batch_size": 50})
    _, _, score, _, calib = search_data(cfg, "synthetic", None, 0, torch.device("cpu"))
    for _, labels in score:
        assert len(labels.unique()) >= 5  # a sorted split would give 1-2 classes per batch of 50
    first = [b[1] for b in calib]
    assert all(torch.equal(p, q) for p, q in zip(first, [b[1] for b in calib]))  # fixed batches


def test_recalibrated_bn_is_the_average_of_batch_statistics():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4))
    batches = [(torch.randn(8, 3, 4, 4) + k, None) for k in range(3)]
    assert recalibrate_bn(net, [net], batches, device=torch.device("cpu")) == 3
    with torch.no_grad():
        means = torch.stack([net[0](b).mean((0, 2, 3)) for b, _ in batches])
    torch.testing.assert_close(net[1].running_mean, means.mean(0))
    assert net[1].momentum == 0.1  # restored


def test_indicator_readings():
    assert indicator_score(0.5, 0.8, 2.0) == pytest.approx(1.1)  # printed: A_C + β(A_P − A_C)
    assert indicator_score(0.5, 0.8, 2.0, "gap_penalty") == pytest.approx(-0.1)  # A_C − β(A_P − A_C)
    assert indicator_coefficients(2.0, "printed") == (-1.0, 2.0)
    assert indicator_coefficients(0.5, "gap_penalty") == (1.5, -0.5)
    with pytest.raises(Exception, match="printed, gap_penalty"):
        indicator_coefficients(1.0, "bogus")


def test_indicator_noise_combines_binomial_errors_as_eq1():
    se = indicator_noise(0.3, 0.4, 2500, 2.0)
    expected = math.sqrt((-1) ** 2 * 0.3 * 0.7 / 2500 + 2 ** 2 * 0.4 * 0.6 / 2500)
    assert se == pytest.approx(expected)
    assert indicator_noise(0.3, None, 100, 0.0) == pytest.approx(math.sqrt(0.21 / 100))


def test_round_noise_is_spread_over_split_noise():
    draws = [{"A_C": a, "A_P": a + 0.1, "z": indicator_score(a, a + 0.1, 2.0), "n": 1000}
             for a in (0.2, 0.3, 0.4, 0.5)]
    out = round_noise(draws, 2.0)
    assert out["z_std"] == pytest.approx(torch.tensor([d["z"] for d in draws]).std().item())
    assert out["snr"] == pytest.approx(out["z_std"] / out["z_se"])
    assert out["snr"] > 2
    assert round_noise(draws[:1], 2.0)["snr"] is None


def test_search_writes_snr_per_round(tmp_path):
    from cpnas.search import run_search

    cfg = get_config("smoke", {**TINY, "data.synthetic_train": 400, "search.train_fraction": 0.05,
                               "search.score_fraction": 0.05})
    result = run_search("cpnas", cfg, dataset="synthetic", out=tmp_path / "s", device="cpu")
    import json

    ind = json.loads((result.out / "indicator.json").read_text())
    assert len(ind["rounds"]) == 7 and all("snr" in r and "z_se" in r for r in ind["rounds"])
    assert ind["indicator"] == "printed" and ind["parent_relu"] is True
    assert all(h["score_images"] == 20 for h in result.history)


def test_parent_relu_makes_the_parent_nonlinear():
    path = SampledPath(("sep_conv_3x3",) * 14, ("dil_conv_3x3",) * 14)
    torch.manual_seed(0)
    outs = {}
    for name, precision in (("linear", REAL), ("relu", REAL_RELU)):
        torch.manual_seed(0)
        net = SearchNetwork(C=4, layers=3, reduction_layers=(1,), precision=precision).eval()
        a, b = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
        with torch.no_grad():
            f = lambda x: net(x, path) - net(torch.zeros_like(x), path)  # noqa: E731
            outs[name] = ((f(a + b) - f(a) - f(b)).abs().max() / f(a + b).abs().max()).item()
        assert any(isinstance(m, ReLUConv2d) for m in net.modules()) == (name == "relu")
    assert outs["linear"] < 1e-4  # relative: without ReLU (and max-pool) the 32-bit path is affine
    assert outs["relu"] > 0.05


def test_bad_readings_are_refused_before_any_data(capsys):
    from cpnas.cli import main

    for key, value in (("search.indicator", "both"), ("search.final_cell", "top3"), ("search.parent_relu", "maybe"),
                       ("cifar.optimizer", "lamb"), ("loss.kernel_source", "teacher")):
        assert main(["search", "--scale", "cpu", "--set", f"{key}={value}", "--data", "/nonexistent"]) != 0
        err = capsys.readouterr().err
        assert key in err and "Traceback" not in err
