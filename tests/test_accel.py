"""cpnas.accel: --compile auto|on|off and --amp bf16 (CUDA only), recorded, refused when unknown."""

import logging

import pytest
import torch

from cpnas import accel, dispatch
from cpnas.errors import CpnasError
from cpnas.networks import SearchNetwork


@pytest.fixture(autouse=True)
def _reset(fresh_dispatch):
    accel.reset()
    yield
    accel.reset()


def test_defaults_and_refusals(caplog):
    assert accel.current() == accel.Acceleration() and accel.describe()["compile"] == "auto"
    with caplog.at_level(logging.WARNING, logger="cpnas.accel"):
        got = accel.configure("bf16", True, "cpu")
    assert got.amp == "off" and got.compile == "on" and "bf16 autocast is CUDA-only" in caplog.text
    with pytest.raises(CpnasError, match="--amp must be one of off, bf16"):
        accel.configure("fp8", "off", "cpu")
    with pytest.raises(CpnasError, match="--compile must be one of auto, on, off"):
        accel.configure("off", "sometimes", "cpu")


def test_auto_compiles_only_where_the_bench_measured_it_faster():
    accel.configure("off", "auto", "cpu")
    assert not accel.compiling("train")  # nothing measured: eager
    dispatch.remember("compile", ("train", "cpu"), {"eager": 1.0, "compiled": 0.5})
    dispatch.remember("compile", ("search", "cpu"), {"eager": 1.0, "compiled": 2.0})
    assert accel.compiling("train") and not accel.compiling("search")
    dispatch.reset()  # the verdicts were written to the machine's cache: a new process reads them
    assert accel.compiling("train") and not accel.compiling("search")
    accel.configure("off", "off", "cpu")
    assert not accel.compiling("train")
    accel.configure("off", "on", "cpu")
    assert accel.compiling("search")


def test_auto_follows_forced_forms(monkeypatch):
    monkeypatch.setenv("CPNAS_FORMS", "compile=compiled")
    assert accel.compiling("train") and accel.compiling("search")


def test_off_the_hooks_change_nothing_and_record_it():
    accel.configure("off", "off", "cpu")
    net = SearchNetwork(C=4, layers=2, reduction_layers=(1,))
    assert accel.compile_ops(net) is net and accel.compile_model(net) is net
    assert accel.describe()["compiled"] == {"train": False, "search": False}
    with accel.autocast(torch.device("cpu")):
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert y.dtype == torch.float32


def test_on_compiles_every_candidate_op_and_the_training_network(monkeypatch, tmp_path):
    monkeypatch.setenv(accel.CACHE_ENV, "")  # unset for the test, restored after it
    accel.configure("off", "on", "cpu")
    compiled = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, *a, **k: compiled.append(type(self).__name__))
    net = SearchNetwork(C=4, layers=2, reduction_layers=(1,))
    accel.compile_ops(net)
    n_ops = sum(len(ops) for cell in net.cells for ops in cell.edge_ops)
    # every candidate op, each cell's two preprocessings and the stem, not the path-dependent supernet
    assert len(compiled) == n_ops + 2 * len(net.cells) + 1
    assert torch._dynamo.config.recompile_limit >= accel.describe()["compile_stats"]["op_signatures"]
    monkeypatch.setattr(torch, "compile", lambda model, **k: ("compiled", model))
    assert accel.compile_model(net) == ("compiled", net)
    d = accel.describe()
    assert d["compiled"] == {"search": True, "train": True}
    from cpnas.paths import portable

    assert d["compile_stats"]["cache_dir"] == portable(tmp_path / "inductor")  # under $CPNAS_CACHE


def test_bind_forms_stores_the_dispatched_dilated_conv_form(monkeypatch):
    from cpnas.binary import BINARY
    from cpnas.genotype import DARTS_V2
    from cpnas.networks import NetworkCIFAR

    monkeypatch.setenv("CPNAS_FORMS", "dilated_conv=space_to_batch,sign=torch")
    net = NetworkCIFAR(DARTS_V2, C=4, layers=3, auxiliary=False, precision=BINARY)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    rng = torch.get_rng_state()
    forms = accel.bind_forms(net, torch.empty(2, 3, 16, 16))
    assert forms and set(forms.values()) == {"space_to_batch"}  # DARTS_V2's normal cell has a dilated conv
    assert all(net.get_submodule(name).dilated_form == "space_to_batch" for name in forms)
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in state.items())  # BN statistics untouched


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bf16_autocast_on_cuda():
    accel.configure("bf16", "off", "cuda")
    with accel.autocast(torch.device("cuda")):
        y = torch.ones(2, 2, device="cuda") @ torch.ones(2, 2, device="cuda")
    assert y.dtype == torch.bfloat16


def test_cli_accepts_the_options(capsys):
    from cpnas.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "--amp {off,bf16}" in out and "--compile [{auto,on,off}]" in out


def test_the_cache_dir_that_importing_dynamo_writes_counts_as_unset(monkeypatch, tmp_path):
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir as inductor_default

    from cpnas.paths import CACHE_ENV as PROJECT_CACHE_VAR

    monkeypatch.setenv(PROJECT_CACHE_VAR, str(tmp_path))
    monkeypatch.setenv(accel.CACHE_ENV, inductor_default())  # what `import torch._dynamo` leaves behind
    assert accel.use_cache_dir() == str(tmp_path / "inductor")
    monkeypatch.setenv(accel.CACHE_ENV, str(tmp_path / "mine"))  # a user's own choice is kept
    assert accel.use_cache_dir() == str(tmp_path / "mine")


def test_compile_stats_count_from_each_configuration(monkeypatch, tmp_path):
    totals = {"graphs": 3, "dynamo_s": 10.0, "backward_s": 4.0}
    monkeypatch.setattr(accel, "_totals", lambda: dict(totals))
    monkeypatch.setenv(accel.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(torch, "compile", lambda model, **k: model)
    net = torch.nn.Linear(2, 2)
    accel.configure("off", "on", "cpu")
    accel.compile_model(net)
    totals.update(graphs=4, dynamo_s=12.5, backward_s=5.0)
    assert accel.compile_stats()["graphs"] == 1 and accel.compile_stats()["dynamo_s"] == 2.5
    accel.configure("off", "on", "cpu")  # the next run in the same process
    accel.compile_model(net)
    totals.update(dynamo_s=13.0)
    s = accel.compile_stats()
    assert (s["graphs"], s["dynamo_s"], s["backward_s"]) == (0, 0.5, 0.0)
    accel.reset()


def test_auto_compiles_a_run_only_when_its_steps_repay_the_measured_compile(monkeypatch, tmp_path):
    from cpnas import dispatch
    from cpnas.paths import CACHE_ENV as PROJECT_CACHE_VAR

    monkeypatch.setenv(PROJECT_CACHE_VAR, str(tmp_path))
    monkeypatch.delenv("CPNAS_FORMS", raising=False)
    dispatch.reset(ignore_disk=True)
    accel.configure("off", "auto", "cpu")
    try:
        assert not accel.compiling("train", steps=10**6)  # nothing measured: eager
        dispatch.remember("compile", ("train", "cpu"), {"eager": 0.30, "compiled": 0.25})
        assert accel.compiling("train")  # faster per step, run length unknown
        assert accel.pays_off("train", 100) is None  # no compile time measured yet
        accel.remember_costs("train", "cpu", eager_step_s=0.30, compiled_step_s=0.25, compile_s=150.0)
        assert not accel.compiling("train", steps=2000)  # saves 100 s, costs 150 s
        assert accel.compiling("train", steps=4000)  # saves 200 s
        monkeypatch.setenv("CPNAS_FORMS", "compile=compiled")
        assert accel.compiling("train", steps=10)  # forced
    finally:
        dispatch.reset()
        accel.reset()
