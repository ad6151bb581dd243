"""The 8 operations of Fig. 4 (§2.2), parametrized over the ``OPS`` registry.

Every op × stride × precision: shape, finiteness, gradients, no ReLU anywhere
(§2.2 removes them), and convolutions that are 1-bit exactly when asked.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cpnas.binary import BINARY, PRECISIONS, REAL, BinaryConv2d
from cpnas.ops import CONV_OPS, OPS, POOL_OPS, PRIMITIVES, SepConv, build_op

C, H = 4, 8
PRECISION_CASES = [BINARY, REAL]
RELU_TYPES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.SELU, nn.GELU, nn.SiLU,
              nn.Hardtanh)


def test_registry_is_the_paper_op_set():
    # §2.2's list of K = 8 operations, under DARTS' names
    assert set(PRIMITIVES) == {"none", "skip_connect", "dil_conv_3x3", "dil_conv_5x5", "avg_pool_3x3",
                               "max_pool_3x3", "sep_conv_3x3", "sep_conv_5x5"}
    assert len(PRIMITIVES) == 8 and PRIMITIVES == tuple(OPS)
    # Fig. 4: 4 convolutional operations and 4 non-convolutional ones
    assert len(CONV_OPS) == 4 and CONV_OPS <= set(OPS)
    assert POOL_OPS <= set(OPS) - CONV_OPS


def test_unknown_op_lists_the_valid_ones():
    with pytest.raises(KeyError, match="unknown op 'conv_7x7'.*sep_conv_3x3"):
        build_op("conv_7x7", C, 1, BINARY)


@pytest.mark.parametrize("precision", PRECISION_CASES, ids=lambda p: p.name)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("name", PRIMITIVES)
def test_op_shape_finiteness_and_gradients(name, stride, precision):
    torch.manual_seed(0)
    op = build_op(name, C, stride, precision).train()
    # values of order 1, so the STE clip |x| <= 1 lets a good share of gradients through
    x = (0.7 * torch.randn(2, C, H, H)).requires_grad_(True)
    y = op(x)
    assert y.shape == (2, C, H // stride, H // stride)  # channels kept, stride 2 halves H and W
    assert torch.isfinite(y).all()

    (y * torch.randn_like(y)).sum().backward()
    if name == "none":
        assert torch.equal(y, torch.zeros_like(y))
        return
    assert x.grad is not None and x.grad.abs().sum() > 0
    params = list(op.named_parameters())
    if name in CONV_OPS or (name == "skip_connect" and stride == 2):
        assert params, f"{name} should have parameters"
    for pname, p in params:
        assert p.grad is not None, f"no gradient reached {name}.{pname}"
        assert p.grad.abs().sum() > 0, f"zero gradient at {name}.{pname}"


@pytest.mark.parametrize("name", PRIMITIVES)
def test_odd_input_sizes_agree_between_ops(name):
    # node j sums the outputs of different ops: every op must round odd sizes the same way (up)
    op = build_op(name, C, 2, BINARY).eval()
    with torch.no_grad():
        assert op(torch.randn(1, C, 7, 5)).shape == (1, C, 4, 3)


@pytest.mark.parametrize("precision", list(PRECISIONS.values()), ids=list(PRECISIONS))
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("name", PRIMITIVES)
def test_no_relu_and_conv_precision(name, stride, precision):
    op = build_op(name, C, stride, precision)
    modules = list(op.modules())
    relus = [type(m).__name__ for m in modules if isinstance(m, RELU_TYPES)]
    assert not relus, f"§2.2 removes the ReLUs, but {name} contains {relus}"
    convs = [m for m in modules if isinstance(m, nn.Conv2d)]
    if precision.binary:
        assert all(type(m) is BinaryConv2d for m in convs), f"{name} has real convs at {precision.name}"
    else:
        assert not any(isinstance(m, BinaryConv2d) for m in convs)


def expected_layout(name: str, stride: int) -> tuple[int, int]:
    """(number of convs, number of parameters) of op ``name`` on C channels with affine BN.

    Written from the DARTS definitions: a dilated conv is depthwise k×k + pointwise 1×1 + BN;
    a separable conv is two of those; a stride-2 skip is two 1×1 convs to C/2 channels + BN.
    """
    bn = 2 * C
    if name in ("dil_conv_3x3", "dil_conv_5x5"):
        k = int(name[-1])
        return 2, C * k * k + C * C + bn
    if name in ("sep_conv_3x3", "sep_conv_5x5"):
        k = int(name[-1])
        return 4, 2 * (C * k * k + C * C + bn)
    if name == "skip_connect" and stride == 2:
        return 2, 2 * C * (C // 2) + bn
    return 0, 0


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("name", PRIMITIVES)
def test_conv_count_and_params(name, stride):
    for precision in PRECISION_CASES:
        op = build_op(name, C, stride, precision)
        convs = [m for m in op.modules() if isinstance(m, nn.Conv2d)]
        n_params = sum(p.numel() for p in op.parameters())
        assert (len(convs), n_params) == expected_layout(name, stride)


@pytest.mark.parametrize("name", sorted(CONV_OPS))
def test_conv_op_geometry(name):
    kernel = int(name[-1])
    dilation = 2 if name.startswith("dil") else 1
    op = build_op(name, C, 2, BINARY)
    convs = [m for m in op.modules() if isinstance(m, nn.Conv2d)]
    depthwise = [m for m in convs if m.groups == C]
    pointwise = [m for m in convs if m.kernel_size == (1, 1)]
    assert len(depthwise) + len(pointwise) == len(convs)
    assert all(m.kernel_size == (kernel, kernel) and m.dilation == (dilation, dilation) for m in depthwise)
    assert depthwise[0].stride == (2, 2)  # the stride is taken by the first layer only
    assert all(m.stride == (1, 1) for m in convs[1:])


def test_affine_false_has_no_bn_parameters():
    op = build_op("sep_conv_3x3", C, 1, BINARY, affine=False)
    bns = [m for m in op.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(m.weight is None for m in bns)


def test_none_op_and_pools_have_no_parameters():
    for name in ("none", "avg_pool_3x3", "max_pool_3x3"):
        for stride in (1, 2):
            assert not list(build_op(name, C, stride, BINARY).parameters())
    assert isinstance(build_op("skip_connect", C, 1, BINARY), nn.Identity)


def test_star_variant_keeps_first_sep_layer_input_real():
    # Table 2 '*': the first layer of each separable conv sees real activations
    op = build_op("sep_conv_3x3", C, 1, PRECISIONS["binary*"])
    assert isinstance(op, SepConv)
    convs = [m for m in op.modules() if isinstance(m, BinaryConv2d)]
    assert [m.binarize_input for m in convs] == [False, True, True, True]
    plain = [m.binarize_input for m in build_op("sep_conv_3x3", C, 1, BINARY).modules()
             if isinstance(m, BinaryConv2d)]
    assert plain == [True] * 4


def test_avg_pool_excludes_padding():
    # DARTS' avg pool uses count_include_pad=False: a constant input stays constant at the border
    op = build_op("avg_pool_3x3", C, 1, BINARY)
    y = op(torch.ones(1, C, 5, 5))
    assert torch.equal(y, torch.ones_like(y))


# --- the op tables and drawings of notebook 01 (cpnas.plots) --------------------------

@pytest.mark.parametrize("precision", PRECISION_CASES, ids=lambda p: p.name)
def test_ops_shape_table_matches_the_modules(precision):
    from cpnas.plots import ops_shape_table

    table = ops_shape_table(C, H, precision)
    assert len(table) == 2 * len(PRIMITIVES)
    for row in table.to_dict("records"):
        n_convs, n_params = expected_layout(row["op"], row["stride"])
        h = H // row["stride"]
        assert (row["input"], row["output"]) == (f"{C}×{H}×{H}", f"{C}×{h}×{h}")
        assert row["params"] == n_params
        assert (row["binary convs"], row["real convs"]) == ((n_convs, 0) if precision.binary else (0, n_convs))
        assert row["finite"]


def test_op_layers_are_read_from_the_modules():
    from cpnas.plots import op_layers

    assert op_layers("sep_conv_3x3", 2) == ["1-bit conv 3×3, depthwise, stride 2", "1-bit conv 1×1, C→C", "BN",
                                            "1-bit conv 3×3, depthwise", "1-bit conv 1×1, C→C", "BN"]
    assert op_layers("dil_conv_5x5", 1, REAL) == ["32-bit conv 5×5, depthwise, dilation 2",
                                                  "32-bit conv 1×1, C→C", "BN"]
    assert op_layers("sep_conv_5x5", 1, PRECISIONS["binary*"])[0] == "1-bit conv 5×5, depthwise, real input"
    assert op_layers("skip_connect", 1) == ["identity"]
    assert "concat (channels)" in op_layers("skip_connect", 2)
    assert op_layers("none", 2) == ["zero, stride 2"]


def test_fig4_draws_every_op():
    from cpnas.plots import fig4_ops

    source = fig4_ops(BINARY).source
    for name in PRIMITIVES:
        assert f"cluster_{name}" in source
    assert "ReLU" not in source and "32-bit" not in source
    assert "1-bit" not in fig4_ops(REAL).source


def _factorized_reduce_by_slicing(m, x: torch.Tensor) -> torch.Tensor:
    """DARTS' FactorizedReduce as written there: conv_2 on x[:, :, 1:, 1:] zero-padded back to x's size."""
    shifted = nn.functional.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))
    return m.bn(torch.cat([m.conv_1(x), m.conv_2(shifted)], dim=1))


@pytest.mark.parametrize("precision", [BINARY, REAL, PRECISIONS["binary**"]], ids=lambda p: p.name)
@pytest.mark.parametrize("size", [8, 7])
@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last], ids=["nchw", "nhwc"])
def test_factorized_reduce_shift_is_exact(precision, size, fmt):
    """The one-pad shift (and, at 1 bit, the shifted shared sign padded with +1) gives bit-for-bit the
    output and gradients of slicing then zero-padding, odd sizes and both memory formats included."""
    from cpnas.binary import shared_signs
    from cpnas.ops import FactorizedReduce

    torch.manual_seed(0)
    m = FactorizedReduce(6, 8, precision, real_input=precision.preprocess_real_input).to(memory_format=fmt)
    x0 = torch.randn(3, 6, size, size).contiguous(memory_format=fmt)
    x0[0, 0, 0, :3] = 0.0  # zeros, where sign gives +1
    results = []
    for forward in (m.forward, lambda x: _factorized_reduce_by_slicing(m, x)):
        for shared in (False, True):
            m.zero_grad()
            x = x0.clone().requires_grad_()
            with shared_signs() if shared else torch.enable_grad():
                y = forward(x)
            y.backward(torch.linspace(-2, 2, y.numel()).reshape(y.shape))
            results.append((y.detach(), x.grad, m.conv_1.weight.grad, m.conv_2.weight.grad))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert torch.equal(a, b)
