"""cpnas.accel: --amp bf16 and --compile are CUDA-only, off by default, recorded, and refused when unknown."""

import logging

import pytest
import torch

from cpnas import accel
from cpnas.errors import CpnasError
from cpnas.networks import SearchNetwork


@pytest.fixture(autouse=True)
def _reset():
    accel.reset()
    yield
    accel.reset()


def test_off_by_default_and_always_off_on_cpu(caplog):
    assert accel.current() == accel.Acceleration() and accel.describe() == {"amp": "off", "compile": False}
    with caplog.at_level(logging.WARNING, logger="cpnas.accel"):
        got = accel.configure("bf16", True, "cpu")
    assert got == accel.Acceleration() and "ignored on cpu" in caplog.text
    with pytest.raises(CpnasError, match="--amp must be one of off, bf16"):
        accel.configure("fp8", False, "cpu")


def test_on_cpu_the_hooks_change_nothing():
    net = SearchNetwork(C=4, layers=2, reduction_layers=(1,))
    assert accel.compile_ops(net) is net and accel.compile_model(net) is net
    with accel.autocast(torch.device("cpu")):
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert y.dtype == torch.float32


def test_cuda_settings_are_kept_and_hooks_apply(monkeypatch):
    got = accel.configure("bf16", True, torch.device("cuda", 0))  # configuring needs no GPU
    assert got == accel.Acceleration("bf16", True) and accel.describe() == {"amp": "bf16", "compile": True}
    compiled = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, *a, **k: compiled.append(type(self).__name__))
    net = SearchNetwork(C=4, layers=2, reduction_layers=(1,))
    accel.compile_ops(net)
    n_ops = sum(len(ops) for cell in net.cells for ops in cell.edge_ops)
    assert len(compiled) == n_ops  # every candidate op, not the path-dependent supernet
    accel.compile_model(net)
    assert compiled[-1] == "SearchNetwork"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bf16_autocast_on_cuda():
    accel.configure("bf16", False, "cuda")
    with accel.autocast(torch.device("cuda")):
        y = torch.ones(2, 2, device="cuda") @ torch.ones(2, 2, device="cuda")
    assert y.dtype == torch.bfloat16


def test_cli_accepts_the_options(capsys):
    from cpnas.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "--amp {off,bf16}" in out and "--compile" in out
