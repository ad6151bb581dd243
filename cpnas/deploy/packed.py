"""The packed modules of a trained 1-bit network: packed weights, folded BN, XNOR-popcount 1×1 convs.

:func:`~cpnas.deploy.network.pack_network` replaces every op block of an evaluation
network by the module here that computes the same values:

* **Binary 1×1 convs** (the pointwise half of every ``dil_conv`` / ``sep_conv``, the
  input-node preprocessing, both halves of a factorized reduce): weights stored as
  sign bits, 64 per word; the input's signs are packed on the fly and the conv is
  one XNOR-popcount GEMM (XNOR-Net, Rastegari et al., ECCV 2016, §3.2;
  :mod:`cpnas.deploy.kernels`). Its scale α (§2.4) and the BatchNorm after it fold
  into one per-channel affine term ``scale·dot + bias`` (BN in eval mode is affine;
  the folding of Jacob et al., CVPR 2018, §3.2), written by the kernel itself.
* **Binary depthwise convs** (the first half of every separable / dilated conv):
  in int8 — the input's signs once as int8, ±1 per tap and channel added 64
  channels at a time, the sign bits of the integer sums packed for the pointwise
  GEMM that follows (:mod:`cpnas.deploy.kernels`, ``binary_chain``). A whole
  ``sep_conv`` / ``dil_conv`` is one call, and between the two halves of a
  ``sep_conv`` the GEMM writes the int8 signs of its folded-BN output into the next
  depthwise input: no float tensor between binary layers. At a tie (integer sum
  ``d = 0``: border pixels with an even number of taps inside the image) the sign
  is not that of ``d``: the simulated network computes
  ``conv(sign(x), α·sign(W))`` in float32, whose sum of ``±α`` terms leaves a
  rounding residual of an ulp or so, and the sign that follows takes the residual's
  sign. The trained network was trained and tested with that arithmetic, so the
  kernel reproduces it at ties: the float32 sum of the ``±α`` terms in the float
  conv's order (taps row by row from the top-left, starting from 0, as oneDNN's
  depthwise kernels add them in both memory formats and both dilated-conv forms;
  ``docs/inference.md``). A depthwise conv with real inputs (Table 2's ``*``) stays
  float32 (:class:`PackedDepthwise`).
* **Pooling** runs in the extension, bit-identical to PyTorch's CPU kernels.
* **Reals stay real**: the stem, skip connections, node sums, the classifier,
  and any conv whose inputs are real (Table 2's ``*`` / ``**`` variants) compute
  the simulated network's float values (node sums and skip connections inside the
  extension where a cell runs as one call, :mod:`cpnas.deploy.cellplan`).

Activations flow in ``channels_last`` (NHWC), so the channels of one pixel — the
bits one word packs — are contiguous.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cpnas import fastconv
from cpnas.binary import BinaryConv2d, scaling_factor, sign
from cpnas.deploy import kernels
from cpnas.ops import Pool

WORD_BITS = 64
"""Signs per storage word (uint64, kept in int64 tensors)."""
OUT_ALIGN = 16
"""Output channels per AVX-512 register of 32-bit popcounts; weight columns are padded to it."""


def pack_bits(values: torch.Tensor) -> torch.Tensor:
    """Sign bits of each row of a 2-D tensor, 64 per int64 word, bit 1 = negative (pure PyTorch).

    The storage format of the weights; :func:`cpnas.deploy.kernels.pack_signs` is the
    same for activations, in C++.
    """
    rows, n = values.shape
    words = -(-n // WORD_BITS)
    bits = torch.zeros(rows, words * WORD_BITS, dtype=torch.int64)
    bits[:, :n] = (values < 0).to(torch.int64)
    shifts = torch.arange(WORD_BITS, dtype=torch.int64)
    # bit 63 lands on the sign of the int64: the sum of distinct powers of two wraps exactly as uint64 would
    return (bits.view(rows, words, WORD_BITS) << shifts).sum(dim=2)


def unpack_signs(words: torch.Tensor, n: int) -> torch.Tensor:
    """±1 float32 ``(rows, n)`` from :func:`pack_bits` words (bit 1 → −1)."""
    shifts = torch.arange(WORD_BITS, dtype=torch.int64)
    bits = ((words.unsqueeze(-1) >> shifts) & 1).flatten(1)[:, :n]
    return 1.0 - 2.0 * bits.to(torch.float32)


def _bn_affine(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """BN in eval mode as ``γ/σ·y + (β − γμ/σ)``, in float64."""
    if bn.training or bn.running_mean is None:
        raise ValueError("BN folding needs a BatchNorm2d in eval mode with running statistics")
    inv = (bn.running_var.double() + bn.eps).rsqrt()
    gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(inv)
    beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(inv)
    return gamma * inv, beta - gamma * inv * bn.running_mean.double()


def _binary_1x1(conv: nn.Module) -> bool:
    return (isinstance(conv, BinaryConv2d) and conv.binarize_input and conv.kernel_size == (1, 1)
            and conv.groups == 1 and conv.padding == (0, 0) and conv.dilation == (1, 1) and conv.bias is None
            and conv.stride[0] == conv.stride[1])


class PackedConv1x1(nn.Module):
    """``BN(conv1x1(sign(x), α·sign(W)))`` as one XNOR-popcount GEMM with the affine folded in.

    Buffers: ``weight_bits`` int64 ``(C_out, ⌈C_in/64⌉)`` (the stored form), ``scale``
    and ``bias`` float32 ``(C_out,)``. Input and output are NCHW tensors in
    ``channels_last`` memory; ``stride`` 2 reads every second pixel, as the conv does.
    """

    trace: list | None = None  # when a list: every call appends its integer dot products (tests)

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.c_in, self.c_out, self.stride = c_in, c_out, stride
        words = -(-c_in // WORD_BITS)
        self.register_buffer("weight_bits", torch.zeros(c_out, words, dtype=torch.int64))
        self.register_buffer("scale", torch.ones(c_out))
        self.register_buffer("bias", torch.zeros(c_out))
        self.register_buffer("weight_t", torch.zeros(2 * words, _round_up(c_out, OUT_ALIGN), dtype=torch.int32),
                             persistent=False)
        self.register_load_state_dict_post_hook(lambda module, keys: module._layout())

    @classmethod
    def fold(cls, conv: BinaryConv2d, bn_scale: torch.Tensor, bn_shift: torch.Tensor) -> "PackedConv1x1":
        """From a binary 1×1 conv and the BN affine ``(γ/σ, β − γμ/σ)`` of its output channels."""
        if not _binary_1x1(conv):
            raise ValueError(f"not a binary 1×1 conv with binary inputs: {conv}")
        m = cls(conv.in_channels, conv.out_channels, conv.stride[0])
        w = conv.weight.detach().float().flatten(1)
        alpha = scaling_factor(conv.weight.detach()).flatten().double()
        m.weight_bits.copy_(pack_bits(w))
        m.scale.copy_((bn_scale * alpha).float())
        m.bias.copy_(bn_shift.float())
        m._layout()
        return m

    def _layout(self) -> None:
        """The kernel's layout: 32-bit words, transposed, output columns padded to 16 with zero bits."""
        words32 = self.weight_bits.contiguous().view(torch.int32)  # little endian: word k → 2k, 2k+1
        wt = torch.zeros_like(self.weight_t)
        wt[:, : self.c_out] = words32.t()
        self.weight_t = wt

    def integer_dot(self, x: torch.Tensor) -> torch.Tensor:
        """The XNOR-popcount integers ``Σ_c sign(x_c)·sign(W_oc)`` as float (exact: |dot| ≤ C_in < 2²⁴)."""
        rows, shape = self._rows(x)
        ones, zeros = torch.ones(self.c_out), torch.zeros(self.c_out)
        return kernels.xnor_gemm(kernels.pack_signs(rows), self.weight_t, ones, zeros, self.c_in)

    def _rows(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int]]:
        return _rows(x, self.stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows, (n, h, w) = self._rows(x)
        if self.trace is not None:
            packed = kernels.pack_signs(rows)
            ones, zeros = torch.ones(self.c_out), torch.zeros(self.c_out)
            self.trace.append(kernels.xnor_gemm(packed, self.weight_t, ones, zeros, self.c_in).to(torch.int32))
        out = kernels.extension().xnor_conv1x1(rows, self.weight_t, self.scale, self.bias)
        return out.view(n, h, w, self.c_out).permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        return f"{self.c_in}, {self.c_out}, stride={self.stride}, xnor-popcount, BN folded"


def _round_up(n: int, k: int) -> int:
    return -(-n // k) * k


def _rows(x: torch.Tensor, stride: int = 1) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """An NCHW-shaped tensor as float32 rows ``(n·h·w, C)`` whose channels are contiguous (a view when possible)."""
    if stride != 1:
        x = x[:, :, ::stride, ::stride]
    n, c, h, w = x.shape
    rows = x.permute(0, 2, 3, 1).reshape(n * h * w, c)
    # reshape returns a view whenever one exists, and for some NCHW inputs (batch 1: pixel stride 1, channel
    # stride h·w) that view has strided channels; the kernels read each row's channels contiguously
    if rows.dtype != torch.float32 or rows.stride(1) != 1:
        rows = rows.float().contiguous()
    return rows, (n, h, w)


class PackedDepthwise(nn.Module):
    """A depthwise conv with binary weights, stored as bits + α.

    Binary inputs: its ``int8_weight`` (±1 per tap and channel) feeds the int8 kernel
    of :class:`PackedDilConv`. Real inputs (Table 2's ``*``): :meth:`forward` runs
    ``conv(x, α·sign(W))`` in float32 with ``weight`` (±α, non-persistent), expanded
    once, bit-identical to the simulated network's ``binarize_weight(W)``.
    """

    def __init__(self, channels: int, kernel_size: int, stride: int, padding: int, dilation: int,
                 binarize_input: bool = True) -> None:
        super().__init__()
        self.channels, self.kernel_size = channels, kernel_size
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.binarize_input = binarize_input
        taps = kernel_size * kernel_size
        self.register_buffer("weight_bits", torch.zeros(channels, -(-taps // WORD_BITS), dtype=torch.int64))
        self.register_buffer("alpha", torch.ones(channels))
        self.register_buffer("weight", torch.zeros(channels, 1, kernel_size, kernel_size), persistent=False)
        self.register_buffer("int8_weight", torch.zeros(taps, _round_up(channels, WORD_BITS), dtype=torch.int8),
                             persistent=False)
        self.register_load_state_dict_post_hook(lambda module, keys: module._expand())

    @classmethod
    def from_binary(cls, conv: BinaryConv2d) -> "PackedDepthwise":
        c, k = conv.in_channels, conv.kernel_size[0]
        if not (isinstance(conv, BinaryConv2d) and conv.groups == c == conv.out_channels and conv.bias is None
                and conv.kernel_size[0] == conv.kernel_size[1]):
            raise ValueError(f"not a binary depthwise conv: {conv}")
        m = cls(c, k, conv.stride[0], conv.padding[0], conv.dilation[0], conv.binarize_input)
        w = conv.weight.detach().float()
        m.weight_bits.copy_(pack_bits(w.flatten(1)))
        m.alpha.copy_(scaling_factor(w).flatten())
        m._expand()
        return m

    def _expand(self) -> None:
        taps = self.kernel_size * self.kernel_size
        signs = unpack_signs(self.weight_bits, taps).view(self.channels, 1, self.kernel_size, self.kernel_size)
        self.weight = self.alpha.view(-1, 1, 1, 1) * signs
        # the int8 kernel's layout: one row of ±1 per tap, channels padded to 64 with 0 (α > 0 drops out of a sign)
        int8 = torch.zeros_like(self.int8_weight)
        int8[:, : self.channels] = signs.view(self.channels, taps).t().to(torch.int8)
        self.int8_weight = int8

    def out_size(self, size: int) -> int:
        return (size + 2 * self.padding - self.dilation * (self.kernel_size - 1) - 1) // self.stride + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.binarize_input:
            x = sign(x)
        return fastconv.conv2d(x, self.weight, None, self.stride, self.padding, self.dilation, self.channels)

    def extra_repr(self) -> str:
        return (f"{self.channels}, k={self.kernel_size}, stride={self.stride}, dilation={self.dilation}, "
                f"float32 (bits + α stored)")


class PackedConvBN(nn.Module):
    """The preprocessing ``conv1x1 → BN`` (:class:`~cpnas.ops.ConvBN`), folded."""

    def __init__(self, conv: PackedConv1x1) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class PackedDilConv(nn.Module):
    """``dw conv → pw conv → BN`` (:class:`~cpnas.ops.DilConv`) as one call: int8 depthwise, XNOR pointwise + BN.

    A depthwise conv whose input stays real (Table 2's ``*``) runs in float32 instead.
    """

    def __init__(self, depthwise: PackedDepthwise, pointwise: PackedConv1x1) -> None:
        super().__init__()
        self.depthwise, self.pointwise = depthwise, pointwise

    @property
    def binary(self) -> bool:
        return self.depthwise.binarize_input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.binary:
            return self.pointwise(self.depthwise(x))
        return _run_chain((self,), x)


class PackedSepConv(nn.Sequential):
    """Two :class:`PackedDilConv` (:class:`~cpnas.ops.SepConv`) as one call when both are binary.

    Between the two, the first pointwise GEMM writes the int8 signs of its BN output
    directly into the second depthwise conv's padded input: no float tensor in between.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        units = tuple(self)
        if not all(u.binary for u in units):
            return super().forward(x)
        return _run_chain(units, x)


def _run_chain(units: tuple[PackedDilConv, ...], x: torch.Tensor) -> torch.Tensor:
    """Binary depthwise → pointwise stages on ``x`` (NCHW shape), output in ``channels_last`` memory."""
    rows, (n, h, w) = _rows(x)
    if any(u.pointwise.trace is not None for u in units):
        out, ho, wo = _chain_steps(units, rows, n, h, w)
    else:
        tensors: list[torch.Tensor] = []
        ints: list[int] = []
        for u in units:
            d, p = u.depthwise, u.pointwise
            tensors += [d.int8_weight, d.alpha, p.weight_t, p.scale, p.bias]
            ints += [d.kernel_size, d.stride, d.padding, d.dilation]
        out, ho, wo = kernels.binary_chain(rows, n, h, w, tensors, ints)
    return out.view(n, ho, wo, -1).permute(0, 3, 1, 2)


def _chain_steps(units: tuple[PackedDilConv, ...], rows: torch.Tensor, n: int, h: int,
                 w: int) -> tuple[torch.Tensor, int, int]:
    """:func:`cpnas.deploy.kernels.binary_chain` kernel by kernel, recording each pointwise conv's integers."""
    signs = kernels.sign_pad(rows, n, h, w, units[0].depthwise.padding)
    for i, u in enumerate(units):
        d, p = u.depthwise, u.pointwise
        bits, _ = kernels.binary_depthwise(signs, d.int8_weight, d.alpha, d.kernel_size, d.stride, d.dilation)
        h, w = d.out_size(h), d.out_size(w)
        if p.trace is not None:
            ones, zeros = torch.ones(p.c_out), torch.zeros(p.c_out)
            p.trace.append(kernels.xnor_gemm(bits, p.weight_t, ones, zeros, p.c_in).to(torch.int32))
        if i + 1 < len(units):
            signs = kernels.xnor_gemm_sign_pad(bits, p.weight_t, p.scale, p.bias, p.c_in, n, h, w,
                                               units[i + 1].depthwise.padding)
        else:
            return kernels.xnor_gemm(bits, p.weight_t, p.scale, p.bias, p.c_in), h, w
    raise AssertionError("no stage")


class PackedFactorizedReduce(nn.Module):
    """Two stride-2 XNOR 1×1 convs on the input and on the input shifted by one pixel, BN folded per half."""

    def __init__(self, conv_1: PackedConv1x1, conv_2: PackedConv1x1) -> None:
        super().__init__()
        self.conv_1, self.conv_2 = conv_1, conv_2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        # as FactorizedReduce: pad(x[1:, 1:]) sampled at even positions; for even sizes no pad is ever read
        shifted = x[:, :, 1:, 1:] if h % 2 == 0 and w % 2 == 0 else F.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))
        return torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1)


class PackedPool(nn.Module):
    """3×3 max / average pooling (:class:`~cpnas.ops.Pool`) in the extension, on ``channels_last`` float32.

    Bit-identical to PyTorch's CPU kernels: a max is exact in any order, and the
    average sums its window in PyTorch's order (row by row from 0) before dividing by
    the number of in-image pixels (``count_include_pad=False``).
    """

    KINDS = {"max": 0, "avg": 1}

    def __init__(self, kind: str, stride: int) -> None:
        super().__init__()
        self.kind, self.stride = kind, stride

    @classmethod
    def of(cls, m: Pool) -> "PackedPool | None":
        pool = m.pool
        kind = "avg" if isinstance(pool, nn.AvgPool2d) else "max"
        same = (pool.kernel_size in (3, (3, 3)) and pool.padding in (1, (1, 1)) and not pool.ceil_mode
                and pool.stride in (1, 2, (1, 1), (2, 2)))
        if kind == "avg":
            same = same and not pool.count_include_pad and pool.divisor_override is None
        else:
            same = same and pool.dilation in (1, (1, 1)) and not pool.return_indices
        stride = pool.stride if isinstance(pool.stride, int) else pool.stride[0]
        return cls(kind, stride) if same else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.float32 or not x.is_contiguous(memory_format=torch.channels_last):
            x = x.float().contiguous(memory_format=torch.channels_last)
        return kernels.extension().pool3x3(x, self.stride, self.KINDS[self.kind])

    def extra_repr(self) -> str:
        return f"{self.kind}, 3x3, stride={self.stride}"
