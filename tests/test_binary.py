"""Binarization (§2.4): sign, clipped STE, per-channel α, BinaryConv2d, Precision.

The oracles are written independently of the library: NumPy's ``where(x >= 0, 1, -1)``
for sign, NumPy means for α, and ``F.conv2d`` on tensors binarized by NumPy. The
``TestMutants`` class checks that these oracles *can* fail: it breaks the library
the ways a 1-bit implementation usually goes wrong (``torch.sign`` mapping 0 to 0,
a dropped or per-tensor α, an unclipped or strictly clipped STE) and asserts that
the oracle checks then raise.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cpnas.binary as binary
from cpnas.binary import (BINARY, PRECISIONS, REAL, BinaryConv2d, get_precision,
                          scaling_factor, sign)
from cpnas.errors import CpnasError

# Inputs of the STE check: both clip boundaries, zero (and -0.0), and values just outside.
BOUNDARY_X = [-2.0, -1.0 - 1e-6, -1.0, -0.5, -0.0, 0.0, 1e-7, 0.5, 1.0, 1.0 + 1e-6, 2.0]


def np_sign(a: np.ndarray) -> np.ndarray:
    """The oracle sign: {-1, +1}, with 0 (and -0.0) mapped to +1."""
    return np.where(a >= 0, 1.0, -1.0)


def np_alpha(w: np.ndarray) -> np.ndarray:
    """The oracle XNOR scale: mean |W| over everything but the output channel."""
    return np.abs(w).reshape(w.shape[0], -1).mean(axis=1)


def random_with_zeros(shape, scale: float, gen: torch.Generator, every: int) -> torch.Tensor:
    """float64 normal values times ``scale``, with every ``every``-th entry set to exactly 0."""
    t = torch.randn(shape, generator=gen, dtype=torch.float64) * scale
    t.view(-1)[::every] = 0.0
    return t


# --- sign and the STE ------------------------------------------------------------

def test_sign_maps_zero_to_plus_one_and_everything_to_pm1():
    x = torch.tensor(BOUNDARY_X + [-1e30, 1e30, -3.7, 3.7], dtype=torch.float32)
    y = sign(x)
    assert y.dtype == x.dtype
    assert set(y.tolist()) == {-1.0, 1.0}
    np.testing.assert_array_equal(y.numpy(), np_sign(x.numpy()))
    assert sign(torch.zeros(3)).tolist() == [1.0, 1.0, 1.0]
    assert sign(torch.tensor([-0.0])).item() == 1.0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sign_values_on_random_tensor(dtype):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(4, 5, 6, generator=gen, dtype=dtype)
    x.view(-1)[::3] = 0
    y = sign(x)
    assert torch.isin(y, torch.tensor([-1.0, 1.0], dtype=dtype)).all()
    np.testing.assert_array_equal(y.numpy(), np_sign(x.numpy()))


def check_ste_gradient() -> None:
    """∂sign/∂x is the clip mask 1_{|x| <= 1}, exactly, boundaries included."""
    x = torch.tensor(BOUNDARY_X, dtype=torch.float64, requires_grad=True)
    upstream = torch.arange(1, len(BOUNDARY_X) + 1, dtype=torch.float64)
    (sign(x) * upstream).sum().backward()
    mask = (np.abs(np.array(BOUNDARY_X)) <= 1).astype(np.float64)
    np.testing.assert_array_equal(x.grad.numpy(), upstream.numpy() * mask)


def test_ste_gradient_is_the_clip_mask():
    check_ste_gradient()
    # and the mask is what we think it is at the boundaries: ±1 pass, just outside does not
    x = torch.tensor([-1.0, 1.0, -1.0 - 1e-6, 1.0 + 1e-6, 0.0], dtype=torch.float64, requires_grad=True)
    sign(x).sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 0.0, 0.0, 1.0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_traced_sign_equals_the_eager_sign_forward_and_backward(dtype):
    """The form ``torch.compile`` traces (a float mask in the backward) gives the eager form's values and gradients,
    at the clip edges ±1 and the next floats beyond them too."""
    edge = 1.0 + torch.finfo(dtype).eps
    special = torch.tensor([-2.0, -edge, -1.0, -0.5, -0.0, 0.0, 0.5, 1.0, edge, 2.0], dtype=dtype)
    x = torch.cat([special, torch.randn(1000, generator=torch.Generator().manual_seed(0), dtype=dtype)])
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
    outs = []
    for fn in (binary._SignSTE.apply, binary._TracedSignSTE.apply):
        xi = x.clone().requires_grad_()
        y = fn(xi)
        y.backward(g)
        outs.append((y.detach(), xi.grad))
    assert torch.equal(outs[1][0], outs[0][0]) and torch.equal(outs[1][1], outs[0][1])
    assert outs[1][1][:10].ne(0).tolist() == [False, False, True, True, True, True, True, True, False, False]


# --- scaling factor α --------------------------------------------------------------

@pytest.mark.parametrize("shape", [(4, 3, 3, 3), (8, 1, 5, 5), (6, 2, 1, 1), (3, 7)])
def test_scaling_factor_is_per_output_channel_mean_abs(shape):
    gen = torch.Generator().manual_seed(2)
    w = torch.randn(shape, generator=gen, dtype=torch.float64)
    alpha = scaling_factor(w)
    assert alpha.shape == (shape[0],) + (1,) * (len(shape) - 1)  # broadcasts against w
    np.testing.assert_allclose(alpha.reshape(-1).numpy(), np_alpha(w.numpy()), rtol=1e-12, atol=0)
    # channels really do differ, so a per-tensor mean would not pass the check above
    assert alpha.reshape(-1).unique().numel() == shape[0]


def test_binarize_weight_is_alpha_times_sign():
    gen = torch.Generator().manual_seed(3)
    w = random_with_zeros((5, 2, 3, 3), 1.0, gen, every=4)
    w_hat = binary.binarize_weight(w).numpy()
    expected = np_alpha(w.numpy())[:, None, None, None] * np_sign(w.numpy())
    np.testing.assert_allclose(w_hat, expected, rtol=1e-12, atol=0)
    # every reconstructed value of channel c is exactly +α_c or -α_c
    for c in range(w.shape[0]):
        assert set(np.abs(w_hat[c]).ravel().tolist()) == {float(scaling_factor(w)[c].item())}


# --- BinaryConv2d against an independent oracle -------------------------------------

# (c_in, c_out, kernel, stride, padding, dilation, groups, H, W, bias)
CONV_CASES = [
    (3, 4, 3, 1, 1, 1, 1, 6, 6, False),
    (4, 6, 3, 2, 1, 1, 2, 7, 5, False),   # grouped, stride 2, odd and non-square input
    (4, 4, 3, 1, 2, 2, 4, 8, 8, False),   # depthwise dilated: dil_conv_3x3's first layer
    (4, 4, 5, 2, 4, 2, 4, 9, 9, False),   # depthwise dilated 5x5, stride 2
    (6, 3, 1, 2, 0, 1, 1, 5, 5, False),   # 1x1 stride 2: FactorizedReduce's convs
    (2, 5, 3, 1, 0, 1, 1, 5, 4, True),    # with a (real) bias
]
CONV_IDS = [f"cin{c[0]}-cout{c[1]}-k{c[2]}-s{c[3]}-p{c[4]}-d{c[5]}-g{c[6]}{'-bias' if c[9] else ''}"
            for c in CONV_CASES]


def make_conv(case, binarize_input: bool = True, seed: int = 0):
    c_in, c_out, k, stride, padding, dilation, groups, h, w, bias = case
    gen = torch.Generator().manual_seed(seed)
    conv = BinaryConv2d(c_in, c_out, k, stride, padding, dilation, groups, bias=bias,
                        binarize_input=binarize_input).double()
    with torch.no_grad():
        # weights and inputs spread past ±1 (so the STE clip matters) and containing exact zeros
        conv.weight.copy_(random_with_zeros(conv.weight.shape, 1.5, gen, every=7))
        if bias:
            conv.bias.copy_(torch.randn(c_out, generator=gen, dtype=torch.float64))
    x = random_with_zeros((2, c_in, h, w), 1.5, gen, every=5)
    return conv, x


def oracle_conv(conv: BinaryConv2d, x: torch.Tensor, binarize_input: bool):
    """``conv2d(sign(x), α·sign(W))`` with sign and α computed by NumPy; returns leaf inputs too."""
    w = conv.weight.detach().numpy()
    w_hat = torch.tensor(np_alpha(w)[:, None, None, None] * np_sign(w), requires_grad=True)
    x_in = torch.tensor(np_sign(x.detach().numpy()) if binarize_input else x.detach().numpy(),
                        requires_grad=True)
    bias = None if conv.bias is None else conv.bias.detach()
    y = F.conv2d(x_in, w_hat, bias, conv.stride, conv.padding, conv.dilation, conv.groups)
    return y, x_in, w_hat


def check_forward_matches_oracle(case, binarize_input: bool = True) -> None:
    conv, x = make_conv(case, binarize_input)
    y_ref, _, _ = oracle_conv(conv, x, binarize_input)
    torch.testing.assert_close(conv(x), y_ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_binary_conv_forward_equals_conv_of_signs(case):
    check_forward_matches_oracle(case, binarize_input=True)


@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_binary_conv_without_input_binarization(case):
    check_forward_matches_oracle(case, binarize_input=False)
    conv, x = make_conv(case, binarize_input=False)
    # the input really is real-valued here, so this case differs from the binarized one
    assert not torch.allclose(conv(x), oracle_conv(conv, x, True)[0])


def check_gradients_match_oracle(case) -> None:
    """Exact gradients through the STE, for the input and for the latent weight W.

    With Ŵ = α(W)·sign(W), α_c = mean_i |W_ci| (n entries per channel), and G = ∂L/∂Ŵ:
    ∂L/∂W_ci = α_c·G_ci·1_{|W_ci|<=1} + sgn(W_ci)/n · Σ_i' G_ci'·sign(W_ci'),
    where sgn is the derivative of |·| (0 at 0). For the input, ∂L/∂x = G_x·1_{|x|<=1}.
    """
    conv, x = make_conv(case, binarize_input=True)
    x.requires_grad_(True)
    y = conv(x)
    upstream = torch.randn(y.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    (y * upstream).sum().backward()

    y_ref, x_bin, w_hat = oracle_conv(conv, x, True)
    (y_ref * upstream).sum().backward()
    g_x, g_w = x_bin.grad.numpy(), w_hat.grad.numpy()

    xv = x.detach().numpy()
    np.testing.assert_allclose(x.grad.numpy(), g_x * (np.abs(xv) <= 1), rtol=1e-10, atol=1e-12)

    w = conv.weight.detach().numpy()
    n = w[0].size
    alpha = np_alpha(w)[:, None, None, None]
    through_alpha = (g_w * np_sign(w)).reshape(w.shape[0], -1).sum(axis=1)[:, None, None, None]
    expected_w = alpha * g_w * (np.abs(w) <= 1) + np.sign(w) / n * through_alpha
    assert conv.weight.grad is not None
    np.testing.assert_allclose(conv.weight.grad.numpy(), expected_w, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_binary_conv_gradients_reach_latent_weight_and_input(case):
    check_gradients_match_oracle(case)


def test_binary_conv_weight_gradient_is_nonzero_in_float32():
    conv = BinaryConv2d(3, 4, 3, padding=1, bias=False)
    x = torch.randn(2, 3, 5, 5, generator=torch.Generator().manual_seed(4), requires_grad=True)
    conv(x).square().mean().backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_binary_conv_repr_and_flag():
    conv = BinaryConv2d(2, 2, 3, binarize_input=False)
    assert "binarize_input=False" in repr(conv)
    assert isinstance(conv, nn.Conv2d)  # counted and initialised like any conv


# --- Precision: the conv factory ----------------------------------------------------

def test_precision_conv_factory_types():
    b = BINARY.conv(4, 8, 3, stride=2, padding=1, dilation=1, groups=2)
    r = REAL.conv(4, 8, 3, stride=2, padding=1, dilation=1, groups=2)
    assert type(b) is BinaryConv2d and b.binarize_input
    assert type(r) is nn.Conv2d
    for conv in (b, r):
        assert conv.bias is None
        assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.groups) == \
            (4, 8, (3, 3), (2, 2), 2)
    assert b.weight.shape == r.weight.shape  # Child and Parent hold the same parameters
    assert type(BINARY.conv(4, 4, 1, real_input=True)) is BinaryConv2d
    assert BINARY.conv(4, 4, 1, real_input=True).binarize_input is False
    assert type(REAL.conv(4, 4, 1, real_input=True)) is nn.Conv2d


def test_precision_registry_and_flags():
    assert get_precision("binary") is BINARY and get_precision("real") is REAL
    assert get_precision(BINARY) is BINARY
    star, star2 = PRECISIONS["binary*"], PRECISIONS["binary**"]
    assert (BINARY.binary, BINARY.sep_first_real_input, BINARY.preprocess_real_input) == (True, False, False)
    assert (REAL.binary, REAL.sep_first_real_input, REAL.preprocess_real_input) == (False, False, False)
    assert (star.binary, star.sep_first_real_input, star.preprocess_real_input) == (True, True, False)
    assert (star2.binary, star2.sep_first_real_input, star2.preprocess_real_input) == (True, True, True)
    for name, precision in PRECISIONS.items():
        assert precision.name == name  # the registry key is the name shown in tables
    with pytest.raises(CpnasError, match="unknown precision 'ternary'"):
        get_precision("ternary")
    with pytest.raises(Exception):  # frozen: a precision is a value
        BINARY.binary = False


# --- the tables of notebook 01 (cpnas.plots) -----------------------------------------

def test_sign_table():
    from cpnas.plots import sign_table

    t = sign_table((-2.0, -1.0, 0.0, 1.0, 1.5))
    assert t["sign(x)"].tolist() == [-1, -1, 1, 1, 1]
    assert t["d sign / dx (STE)"].tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


def test_binarization_check_table():
    from cpnas.plots import binarization_check

    t = binarization_check(c_in=3, c_out=5, kernel_size=3, seed=1)
    assert len(t) == 5
    assert (t["distinct |Ŵ|"] == 1).all()
    assert t[["|Ŵ| == α", "sign(Ŵ) == sign(W)", "α minimises error"]].all().all()
    assert ((t["n(+α)"] + t["n(−α)"]) == 3 * 3 * 3).all()


# --- meta-checks: the oracle tests above fail on broken implementations --------------

def _torch_sign(x):
    """A plausible but wrong sign: torch.sign maps 0 to 0 (a third level)."""
    return torch.sign(x)


class TestMutants:
    """Each mutant breaks one property; the matching oracle check must then fail.

    The STE mutants patch the torch form (:class:`cpnas.binary._SignSTE`), so it is forced here; the C++ form
    is checked against the torch form bit for bit in ``tests/test_signext.py``.
    """

    @pytest.fixture(autouse=True)
    def torch_form(self, monkeypatch):
        monkeypatch.setenv("CPNAS_FORMS", "sign=torch")

    @pytest.mark.parametrize("case", [CONV_CASES[0], CONV_CASES[2]], ids=[CONV_IDS[0], CONV_IDS[2]])
    def test_sign_zero_to_zero_is_caught(self, monkeypatch, case):
        monkeypatch.setattr(binary, "sign", _torch_sign)
        with pytest.raises(AssertionError):
            check_forward_matches_oracle(case)

    def test_dropped_alpha_is_caught(self, monkeypatch):
        monkeypatch.setattr(binary, "scaling_factor",
                            lambda w: torch.ones((w.shape[0],) + (1,) * (w.dim() - 1), dtype=w.dtype))
        with pytest.raises(AssertionError):
            check_forward_matches_oracle(CONV_CASES[0])
        with pytest.raises(AssertionError):
            check_forward_matches_oracle(CONV_CASES[0], binarize_input=False)

    def test_per_tensor_alpha_is_caught(self, monkeypatch):
        monkeypatch.setattr(binary, "scaling_factor", lambda w: w.abs().mean())
        with pytest.raises(AssertionError):
            check_forward_matches_oracle(CONV_CASES[1])

    def test_alpha_without_gradient_is_caught(self, monkeypatch):
        real_scaling = binary.scaling_factor
        monkeypatch.setattr(binary, "scaling_factor", lambda w: real_scaling(w).detach())
        check_forward_matches_oracle(CONV_CASES[0])  # the forward is unchanged…
        with pytest.raises(AssertionError):  # …but the latent weight's gradient is not
            check_gradients_match_oracle(CONV_CASES[0])

    def test_unclipped_ste_is_caught(self, monkeypatch):
        monkeypatch.setattr(binary._SignSTE, "backward", staticmethod(lambda ctx, g: g))
        with pytest.raises(AssertionError):
            check_ste_gradient()
        with pytest.raises(AssertionError):
            check_gradients_match_oracle(CONV_CASES[0])

    def test_strict_clip_is_caught(self, monkeypatch):
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * (x.abs() < 1).to(g.dtype)  # excludes the boundary ±1

        monkeypatch.setattr(binary._SignSTE, "backward", staticmethod(backward))
        with pytest.raises(AssertionError):
            check_ste_gradient()


def test_shared_signs_are_exact_and_computed_once_per_input():
    """Sharing sign(x) among the 1-bit convs of one input changes no value and no gradient."""
    from cpnas.genotype import DARTS_V2
    from cpnas.networks import NetworkCIFAR

    torch.manual_seed(0)
    net = NetworkCIFAR(DARTS_V2, C=8, num_classes=10, layers=3, auxiliary=False).double()
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    results, calls = [], []
    real_sign = binary.sign
    for share in (True, False):
        count = [0]

        def counting(t, count=count):
            count[0] += 1
            return real_sign(t)

        binary.sign = counting
        try:
            net.zero_grad()
            xi = x.clone().requires_grad_()
            if share:
                out = net(xi)[0]
            else:
                out = net._forward_cells.__wrapped__(net, net.stem(xi), net.stem(xi))[0]
            out.square().sum().backward()
        finally:
            binary.sign = real_sign
        results.append((out.detach(), xi.grad, [p.grad.clone() for p in net.parameters() if p.grad is not None]))
        calls.append(count[0])
    (o1, g1, p1), (o2, g2, p2) = results
    assert torch.equal(o1, o2)
    torch.testing.assert_close(g1, g2, rtol=1e-12, atol=1e-12)
    for a, b in zip(p1, p2):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert calls[0] < calls[1]  # fewer sign passes with sharing


def test_shared_signs_work_under_inference_mode():
    from cpnas.genotype import DARTS_V2
    from cpnas.networks import NetworkCIFAR

    torch.manual_seed(0)
    net = NetworkCIFAR(DARTS_V2, C=8, num_classes=10, layers=3, auxiliary=False).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        expected = net(x)[0]
    with torch.inference_mode():
        got = net(x)[0]
    assert torch.equal(expected, got)
