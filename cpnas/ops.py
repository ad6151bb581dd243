"""The 8 candidate operations of Fig. 4 as data: ``OPS[name](C, stride, precision, affine)``.

The op set is DARTS' (Liu et al., 2019, ``operations.py``) with the two changes of
paper §2.2: every convolution is binarized (weights and activations, through the
:class:`~cpnas.binary.Precision` conv factory) and the ReLUs are removed ("to avoid
the vanishing of the negative in the 1-bit convolution"). A convolution is
therefore ``conv → BN``; a separable convolution is two stacked
``depthwise conv → pointwise conv → BN`` blocks, as in DARTS. Adding an op is one
entry in :data:`OPS`.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from cpnas.binary import BinaryConv2d, Precision, activation_sign, mark_signed, signs_shared

OpBuilder = Callable[[int, int, Precision, bool], nn.Module]


class Zero(nn.Module):
    """The 'none' op: no connection. Returns zeros at the output resolution."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class ConvBN(nn.Sequential):
    """``conv → BN`` (DARTS' ReLUConvBN without the ReLU, §2.2)."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int,
                 precision: Precision, affine: bool = True, *, real_input: bool = False) -> None:
        super().__init__(
            precision.conv(c_in, c_out, kernel_size, stride, padding, real_input=real_input, block_input=True),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class DilConv(nn.Sequential):
    """Dilated depthwise-separable conv: ``dw dilated conv → pw conv → BN``."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int,
                 dilation: int, precision: Precision, affine: bool = True, *,
                 real_input: bool = False) -> None:
        super().__init__(
            precision.conv(c_in, c_in, kernel_size, stride, padding, dilation, groups=c_in,
                           real_input=real_input, block_input=True),
            precision.conv(c_in, c_out, 1),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class SepConv(nn.Sequential):
    """Depthwise-separable conv applied twice (DARTS ``SepConv``), stride on the first.

    The first depthwise conv is "the first layer in a depth-wise separable
    convolution" of §3.3: ``precision.sep_first_real_input`` (Table 2 ``*``) keeps
    its input activations real.
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int,
                 precision: Precision, affine: bool = True) -> None:
        super().__init__(
            DilConv(c_in, c_in, kernel_size, stride, padding, 1, precision, affine,
                    real_input=precision.sep_first_real_input),
            DilConv(c_in, c_out, kernel_size, 1, padding, 1, precision, affine),
        )


class FactorizedReduce(nn.Module):
    """Halve the resolution with two offset stride-2 1×1 convs, concatenated (DARTS)."""

    def __init__(self, c_in: int, c_out: int, precision: Precision, affine: bool = True, *,
                 real_input: bool = False) -> None:
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {c_out}")
        self.conv_1 = precision.conv(c_in, c_out // 2, 1, stride=2, real_input=real_input, block_input=True)
        self.conv_2 = precision.conv(c_in, c_out // 2, 1, stride=2, real_input=real_input, block_input=True)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The second conv sees the input shifted by one pixel, so the two halves together
        # cover every spatial position: x[:, :, 1:, 1:] zero-padded on the right and bottom,
        # here as one pad with negative leading widths (crop one row and column, pad one).
        # Same values and gradients as slicing then padding; on the CPU the slice's backward
        # (zeros of x's size in the default layout, then a strided copy) is the slower of the
        # two, and it handed the layers below a gradient in another memory format.
        if (_binarizes_input(self.conv_1) and _binarizes_input(self.conv_2) and signs_shared(x)
                and not _tracing()):
            # 1-bit: shift the sign conv_1 takes instead of taking a second sign of the shifted copy.
            # sign(0) = +1 (§2.4), so the zero pad becomes a pad of +1. The forward is bit-identical; backward,
            # conv_2's gradient joins the others of sign(x) before the one STE mask, so a network's gradient
            # sums may add in another order (last-bit differences, as binary.shared_signs).
            # (Traced for Fig. 4, the layers are drawn as the branch below writes them: the same function.)
            # The convs are called on ±1 tensors marked as their own sign (binary.mark_signed): no pass.
            # Outside a shared_signs block (and in inference mode) the two signs are taken as below.
            xb = activation_sign(x)
            shifted = mark_signed(nn.functional.pad(xb, (-1, 1, -1, 1), value=1.0))
            return self.bn(torch.cat([self.conv_1(mark_signed(xb)), self.conv_2(shifted)], dim=1))
        shifted = nn.functional.pad(x, (-1, 1, -1, 1))
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


def _binarizes_input(conv: nn.Module) -> bool:
    return isinstance(conv, BinaryConv2d) and conv.binarize_input


def _tracing() -> bool:
    """Whether ``torch.fx`` is symbolically tracing (Fig. 4's drawings), where no tensor value can steer."""
    from torch.fx._symbolic_trace import is_fx_symbolic_tracing

    return is_fx_symbolic_tracing()


class Pool(nn.Module):
    """3×3 average or max pooling (no parameters, nothing to binarize)."""

    def __init__(self, kind: str, stride: int) -> None:
        super().__init__()
        if kind == "avg":
            self.pool = nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
        else:
            self.pool = nn.MaxPool2d(3, stride=stride, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (isinstance(self.pool, nn.MaxPool2d) and torch.compiler.is_compiling() and x.device.type == "cpu"
                and x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)):
            from cpnas.tracedpool import max_pool2d  # ATen's channels_last kernels in a compiled graph (see there)

            return max_pool2d(x, 3, self.pool.stride, 1)
        return self.pool(x)


def _skip(C: int, stride: int, precision: Precision, affine: bool) -> nn.Module:
    return nn.Identity() if stride == 1 else FactorizedReduce(C, C, precision, affine)


OPS: dict[str, OpBuilder] = {
    "none": lambda C, stride, precision, affine: Zero(stride),
    "skip_connect": _skip,
    "dil_conv_3x3": lambda C, stride, precision, affine: DilConv(C, C, 3, stride, 2, 2, precision, affine),
    "dil_conv_5x5": lambda C, stride, precision, affine: DilConv(C, C, 5, stride, 4, 2, precision, affine),
    "avg_pool_3x3": lambda C, stride, precision, affine: Pool("avg", stride),
    "max_pool_3x3": lambda C, stride, precision, affine: Pool("max", stride),
    "sep_conv_3x3": lambda C, stride, precision, affine: SepConv(C, C, 3, stride, 1, precision, affine),
    "sep_conv_5x5": lambda C, stride, precision, affine: SepConv(C, C, 5, stride, 2, precision, affine),
}
"""Fig. 4 / §2.2: name → builder ``(C, stride, precision, affine) -> nn.Module``."""

PRIMITIVES: tuple[str, ...] = tuple(OPS)
"""The K = 8 op names in a fixed order (the order of §2.2's list)."""

CONV_OPS = frozenset({"dil_conv_3x3", "dil_conv_5x5", "sep_conv_3x3", "sep_conv_5x5"})
POOL_OPS = frozenset({"avg_pool_3x3", "max_pool_3x3"})


def build_op(name: str, C: int, stride: int, precision: Precision, affine: bool = True) -> nn.Module:
    """Build op ``name`` on ``C`` channels; unknown names raise a KeyError listing the valid ones."""
    try:
        builder = OPS[name]
    except KeyError:
        raise KeyError(f"unknown op {name!r}; valid ops are {', '.join(PRIMITIVES)}") from None
    return builder(C, stride, precision, affine)
