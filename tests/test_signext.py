"""The one-pass C++ sign + STE (cpnas.signext): bit for bit the torch form, dispatched, optional.

Both forms of :func:`cpnas.binary.sign` — the torch ops (``torch``) and the
extension (``ext``) — must give the same bits forward and backward, at the
special values (±0.0, ±1 and the floats next to them, ±inf, NaN of both signs,
subnormals) and in both memory formats; the dispatch must choose between them
and record it; and a machine without a compiler must fall back to the torch form
with one log line.
"""

from __future__ import annotations

import logging

import pytest
import torch

import cpnas.binary as binary
from cpnas import dispatch, signext
from cpnas.deploy import kernels

needs_ext = pytest.mark.skipif(kernels.toolchain_missing() is not None,
                               reason=f"no {kernels.toolchain_missing()} to build the sign extension")

DTYPES = [torch.float32, torch.float64]


def bits(t: torch.Tensor) -> torch.Tensor:
    """The raw bits of a float tensor (so -0.0 differs from +0.0 and NaNs compare by payload and sign)."""
    return t.contiguous().view(torch.int32 if t.dtype == torch.float32 else torch.int64)


def special_values(dtype) -> list[float]:
    eps = torch.finfo(dtype).eps
    tiny = torch.finfo(dtype).tiny
    return [0.0, -0.0, 1.0, -1.0, 1.0 + eps, -1.0 - eps, 1.0 - eps / 2, -1.0 + eps / 2, float("nan"), -float("nan"),
            float("inf"), -float("inf"), tiny / 4, -tiny / 4, tiny, -tiny, 0.5, -0.5, 2.0, -2.0, 1e30, -1e30]


def forward_backward(fn, x: torch.Tensor, grad: torch.Tensor):
    xi = x.detach().clone(memory_format=torch.preserve_format).requires_grad_()
    out = fn(xi)
    out.backward(grad)
    return out.detach(), xi.grad


@pytest.fixture(autouse=True)
def fresh(fresh_dispatch):
    """Every test starts from an empty dispatch (conftest's ``fresh_dispatch``)."""
    yield


@pytest.fixture(scope="session")
def ext():
    """The extension, built or loaded once, from $CPNAS_CACHE as the session found it (before `fresh` empties it)."""
    assert signext.available(), signext.unavailable_reason()
    return signext


# --- exactness --------------------------------------------------------------------------------------------------

@needs_ext
@pytest.mark.parametrize("dtype", DTYPES)
def test_special_values_give_the_same_bits(ext, dtype):
    vals = special_values(dtype)
    # both the vectorized body and the scalar tail of every loop: repeat the values past a few vector lengths
    for reps in (1, 1000):
        x = torch.tensor(vals * reps, dtype=dtype)
        grad = torch.tensor(([-0.0, 0.0, float("nan"), -3.5] + [i + 0.25 for i in range(len(vals) - 4)]) * reps,
                            dtype=dtype)
        (y0, g0), (y1, g1) = (forward_backward(f, x, grad) for f in (binary._SignSTE.apply, ext.sign_ste))
        assert torch.equal(bits(y0), bits(y1))
        assert torch.equal(bits(g0), bits(g1))
    y = y1[:len(vals)].tolist()
    assert y[:4] == [1.0, 1.0, 1.0, -1.0]  # ±0 → +1
    assert y[8:10] == [1.0, -1.0]  # NaN: the sign of its sign bit, as copysign(1, nan + 0)
    g = g1[:len(vals)]
    assert bits(g[4:6]).tolist() == [0, 0] and torch.equal(bits(g[2:4]), bits(grad[2:4]))  # ±1 pass, 1 ± eps not
    assert torch.equal(bits(g[8:10]), bits(torch.zeros(2, dtype=dtype)))  # NaN x: +0, as hardtanh_backward


@needs_ext
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("grad_layout", ["contiguous", "channels_last", "expanded"])
def test_random_tensors_give_the_same_bits_in_every_layout(ext, dtype, layout, grad_layout):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 8, 5, 7, generator=g, dtype=dtype) * 1.5
    flat = x.view(-1)
    flat[::11], flat[1::11], flat[2::11], flat[3::11] = 0.0, -0.0, 1.0, -1.0
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    x = x.contiguous(memory_format=fmt)
    if grad_layout == "expanded":
        grad = torch.tensor(-2.5, dtype=dtype).expand(x.shape)
    else:
        grad = torch.randn(x.shape, generator=g, dtype=dtype).contiguous(
            memory_format=torch.channels_last if grad_layout == "channels_last" else torch.contiguous_format)
    (y0, g0), (y1, g1) = (forward_backward(f, x, grad) for f in (binary._SignSTE.apply, ext.sign_ste))
    assert torch.equal(bits(y0), bits(y1)) and torch.equal(bits(g0), bits(g1))
    assert y1.stride() == x.stride()  # the output keeps the input's memory format


@needs_ext
def test_non_dense_and_no_grad_inputs(ext):
    x = torch.randn(6, 8)[:, ::2]  # a strided view: the extension falls back to the torch ops
    assert torch.equal(ext.sign_ste(x), binary._SignSTE.apply(x))
    with torch.no_grad():
        y = ext.sign_ste(torch.randn(5, requires_grad=True))
    assert not y.requires_grad
    with torch.inference_mode():
        assert binary.sign(torch.zeros(3)).tolist() == [1.0, 1.0, 1.0]


@needs_ext
@pytest.mark.parametrize("form", ["torch", "ext"])
def test_oracle_checks_of_test_binary_hold_in_both_forms(ext, monkeypatch, form):
    from tests.test_binary import CONV_CASES, check_forward_matches_oracle, check_gradients_match_oracle, \
        check_ste_gradient

    monkeypatch.setenv("CPNAS_FORMS", f"sign={form}")
    check_ste_gradient()
    for case in CONV_CASES:
        check_forward_matches_oracle(case)
        check_gradients_match_oracle(case)
    assert set(dispatch.chosen()["sign"].values()) == {form}


@needs_ext
def test_a_1bit_network_gives_the_same_bits_in_both_forms(ext, monkeypatch):
    from cpnas.genotype import DARTS_V2
    from cpnas.networks import NetworkCIFAR

    results = []
    for form in ("torch", "ext"):
        monkeypatch.setenv("CPNAS_FORMS", f"sign={form}")
        torch.manual_seed(0)
        net = NetworkCIFAR(DARTS_V2, C=8, num_classes=10, layers=3, auxiliary=False).to(
            memory_format=torch.channels_last)
        x = torch.randn(2, 3, 16, 16).contiguous(memory_format=torch.channels_last).requires_grad_()
        out = net(x)[0]
        out.square().sum().backward()
        results.append([out.detach(), x.grad] + [p.grad for p in net.parameters() if p.grad is not None])
    for a, b in zip(*results):
        assert torch.equal(bits(a), bits(b))


# --- the dispatch ------------------------------------------------------------------------------------------------

@needs_ext
def test_the_dispatch_measures_both_forms_once_per_key_and_caches_the_choice(ext):
    x = torch.randn(8, 16, 8, 8).contiguous(memory_format=torch.channels_last).requires_grad_()
    binary.sign(x).sum().backward()
    binary.sign(x)
    timings = dispatch.timings()
    assert len(timings) == 1
    (key, t), = timings.items()
    assert key.startswith("sign|(8, 16, 8, 8)|") and "fwd+bwd" in key and set(t) == {"torch", "ext"}
    form = min(t, key=t.get)
    assert list(dispatch.chosen()["sign"].values()) == [form]
    assert dispatch.cache_path().is_file()
    with torch.no_grad():  # forward only is another key
        binary.sign(x)
    assert len(dispatch.timings()) == 2


@needs_ext
def test_the_faster_form_is_used(ext, monkeypatch):
    """With the timings rigged, the dispatch follows them (and the form used is the one chosen)."""
    calls = []
    monkeypatch.setattr(signext, "sign_ste", lambda x: calls.append("ext") or binary._SignSTE.apply(x))
    for slow in ("ext", "torch"):
        dispatch.reset(ignore_disk=True)
        monkeypatch.setattr(dispatch, "time_forms", lambda runs, slow=slow: {f: float(f == slow) for f in runs})
        calls.clear()
        binary.sign(torch.randn(3, 4))
        assert calls == ([] if slow == "ext" else ["ext"])


def test_nothing_is_measured_nor_built_under_a_dispatch_mode_or_when_forced(monkeypatch):
    from torch.utils.flop_counter import FlopCounterMode

    monkeypatch.setattr(signext, "extension", lambda: pytest.fail("the extension was asked for"))
    with FlopCounterMode(display=False):
        binary.sign(torch.randn(4, 4, requires_grad=True)).sum().backward()
    monkeypatch.setenv("CPNAS_FORMS", "sign=torch")
    binary.sign(torch.randn(4, 4, requires_grad=True)).sum().backward()
    assert dispatch.timings() == {}


# --- without a compiler --------------------------------------------------------------------------------------------

def test_without_a_compiler_the_torch_form_is_used_after_one_log_line(monkeypatch, caplog):
    monkeypatch.setattr(signext, "_ext", None)
    monkeypatch.setattr(signext, "_failed", None)
    monkeypatch.setattr(kernels, "toolchain_missing", lambda: "a C++ compiler (g++)")
    x = torch.tensor([-0.0, 0.5, -2.0], requires_grad=True)
    with caplog.at_level(logging.WARNING, logger="cpnas.signext"):
        for forced in ("", "sign=ext"):
            monkeypatch.setenv("CPNAS_FORMS", forced)
            y = binary.sign(x)
            y.sum().backward()
            assert y.tolist() == [1.0, 1.0, -1.0]
            x.grad = None
    lines = [r for r in caplog.records if r.name == "cpnas.signext"]
    assert len(lines) == 1 and "g++" in lines[0].getMessage() and "torch form" in lines[0].getMessage()
    assert not signext.available() and dispatch.timings() == {}
    assert not dispatch.cache_path().exists()  # nothing cached: a later install of g++ gets measured
