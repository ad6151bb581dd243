"""cpnas.fastconv: the space-to-batch dilated conv equals F.conv2d in value, gradient and MACs, and the
dispatched conv2d is exact whichever form this machine picks."""

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import cpnas.fastconv as fc
from cpnas.binary import BINARY, REAL, BinaryConv2d


CASES = [  # (kernel, stride, dilation, padding, H, groups)
    (3, 1, 2, 2, 8, "dw"), (5, 1, 2, 4, 8, "dw"), (3, 2, 2, 2, 8, "dw"), (5, 2, 2, 4, 16, "dw"),
    (3, 1, 2, 2, 6, 1), (3, 1, 3, 3, 9, "dw"),
]


def _native_and_fast(k, s, d, p, h, groups, channels_last, dtype=torch.float64, fast=fc.space_to_batch_conv2d):
    torch.manual_seed(0)
    c = 6
    g = c if groups == "dw" else groups
    x = torch.randn(3, c, h, h + d, dtype=dtype)  # non-square: rows and columns are not swapped
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    w = torch.randn(c, c // g, k, k, dtype=dtype)
    outs = []
    for fn in (F.conv2d, fast):
        xi, wi = x.clone().requires_grad_(), w.clone().requires_grad_()
        y = fn(xi, wi, None, s, p, d, g)
        y.backward(torch.arange(y.numel(), dtype=dtype).reshape(y.shape).sin())
        outs.append((y.detach(), xi.grad, wi.grad))
    return outs


@pytest.mark.parametrize("form", ["space_to_batch", "dispatched"])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("case", CASES)
def test_values_and_gradients_equal_native(case, channels_last, form):
    fast = fc.space_to_batch_conv2d if form == "space_to_batch" else fc.conv2d
    (y0, gx0, gw0), (y1, gx1, gw1) = _native_and_fast(*case, channels_last, fast=fast)
    assert y1.shape == y0.shape
    torch.testing.assert_close(y1, y0)
    torch.testing.assert_close(gx1, gx0)
    torch.testing.assert_close(gw1, gw0)


@pytest.mark.parametrize("form, dilations", [("space_to_batch", [1]), ("plain", [2])])
def test_forced_form_is_taken_and_macs_are_unchanged(monkeypatch, form, dilations):
    """CPNAS_FORMS forces a form: the rewrite (no dilated conv reaches aten) or the plain conv; same MACs."""
    monkeypatch.setenv("CPNAS_FORMS", f"dilated_conv={form}")
    x = torch.randn(2, 4, 8, 8)
    w = torch.randn(4, 1, 3, 3)
    seen = []
    real_conv = F.conv2d

    def spy(*args):
        seen.append(args[5] if len(args) > 5 else 1)
        return real_conv(*args)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fc.F, "conv2d", spy)
        fc.conv2d(x, w, None, 1, 2, 2, 4)
    assert seen == dilations
    counts = []
    for fn in (F.conv2d, fc.space_to_batch_conv2d):
        with FlopCounterMode(display=False) as fcm:
            fn(x, w, None, 1, 2, 2, 4)
        counts.append(fcm.get_total_flops())
    assert counts[0] == counts[1] > 0


def test_odd_sizes_fall_back_to_native():
    x = torch.randn(1, 2, 7, 7, dtype=torch.float64)
    w = torch.randn(2, 1, 3, 3, dtype=torch.float64)
    torch.testing.assert_close(fc.conv2d(x, w, None, 1, 2, 2, 2), F.conv2d(x, w, None, 1, 2, 2, 2))


def test_precisions_use_the_fast_conv_for_dilated_layers():
    real = REAL.conv(4, 4, 3, 1, 2, 2, groups=4)
    assert isinstance(real, fc.Conv2d) and isinstance(real, torch.nn.Conv2d)
    assert type(REAL.conv(4, 4, 3, 1, 1)) is torch.nn.Conv2d
    binary = BINARY.conv(4, 4, 3, 1, 2, 2, groups=4)
    assert isinstance(binary, BinaryConv2d)
    x = torch.randn(2, 4, 8, 8)
    native = F.conv2d(x, real.weight, None, 1, 2, 2, 4)
    torch.testing.assert_close(real(x), native)
