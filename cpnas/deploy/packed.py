"""The inference form of a trained 1-bit network: packed weights, folded BN, XNOR-popcount 1×1 convs.

:func:`pack_network` turns an evaluation network (:class:`~cpnas.networks.NetworkCIFAR`
or :class:`~cpnas.networks.NetworkImageNet`, eval mode) into a
:class:`PackedNetwork` that computes the same logits:

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
  depthwise input: no float tensor between binary layers. At an exact tie (integer
  sum 0, border pixels only) the kernel takes sign(0) = +1; the simulated network's
  float32 conv leaves a rounding residual whose sign depends on the kernel form, so
  exactness is checked against the simulated network with exact depthwise sums
  (:func:`exact_depthwise`). A depthwise conv with real inputs (Table 2's ``*``)
  stays float32 (:class:`PackedDepthwise`).
* **Pooling** runs in the extension, bit-identical to PyTorch's CPU kernels.
* **Reals stay real**: the stem, skip connections, node sums, the classifier,
  and any conv whose inputs are real (Table 2's ``*`` / ``**`` variants) run as in
  the simulated network.

Activations flow in ``channels_last`` (NHWC), so the channels of one pixel — the
bits one word packs — are contiguous.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from cpnas import fastconv
from cpnas.binary import BinaryConv2d, scaling_factor, sign
from cpnas.deploy import kernels
from cpnas.ops import ConvBN, DilConv, FactorizedReduce, Pool, SepConv

log = logging.getLogger(__name__)

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
            tensors += [d.int8_weight, p.weight_t, p.scale, p.bias]
            ints += [d.kernel_size, d.stride, d.padding, d.dilation]
        out, ho, wo = kernels.binary_chain(rows, n, h, w, tensors, ints)
    return out.view(n, ho, wo, -1).permute(0, 3, 1, 2)


def _chain_steps(units: tuple[PackedDilConv, ...], rows: torch.Tensor, n: int, h: int,
                 w: int) -> tuple[torch.Tensor, int, int]:
    """:func:`cpnas.deploy.kernels.binary_chain` kernel by kernel, recording each pointwise conv's integers."""
    signs = kernels.sign_pad(rows, n, h, w, units[0].depthwise.padding)
    for i, u in enumerate(units):
        d, p = u.depthwise, u.pointwise
        bits, _ = kernels.binary_depthwise(signs, d.int8_weight, d.kernel_size, d.stride, d.dilation)
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


def _pack_module(m: nn.Module) -> nn.Module | None:
    """The packed replacement of one op block, or ``None`` to keep it as it is."""
    if isinstance(m, Pool):
        return PackedPool.of(m)
    if isinstance(m, ConvBN) and _binary_1x1(m[0]):
        return PackedConvBN(PackedConv1x1.fold(m[0], *_bn_affine(m[1])))
    if isinstance(m, SepConv):
        units = [_pack_module(half) for half in m]
        if all(isinstance(u, PackedDilConv) for u in units):
            return PackedSepConv(*units)
    if isinstance(m, DilConv) and _binary_1x1(m[1]) and isinstance(m[0], BinaryConv2d):
        return PackedDilConv(PackedDepthwise.from_binary(m[0]), PackedConv1x1.fold(m[1], *_bn_affine(m[2])))
    if isinstance(m, FactorizedReduce) and _binary_1x1(m.conv_1) and _binary_1x1(m.conv_2):
        scale, shift = _bn_affine(m.bn)
        half = m.conv_1.out_channels
        return PackedFactorizedReduce(PackedConv1x1.fold(m.conv_1, scale[:half], shift[:half]),
                                      PackedConv1x1.fold(m.conv_2, scale[half:], shift[half:]))
    return None


def _replace(parent: nn.Module) -> None:
    for name, child in list(parent.named_children()):
        packed = _pack_module(child)
        if packed is not None:
            setattr(parent, name, packed)
        else:
            _replace(child)


@dataclass(frozen=True)
class PackedMeta:
    """What rebuilds the network's structure: architecture and sizes (stored beside the packed weights)."""

    genotype: dict
    dataset: str
    channels: int
    layers: int
    num_classes: int
    reductions: tuple[int, ...] | None = None


def _cl(x: torch.Tensor) -> torch.Tensor:
    return x if x.dtype == torch.float32 and x.is_contiguous(memory_format=torch.channels_last) else \
        x.float().contiguous(memory_format=torch.channels_last)


class PackedNetwork(nn.Module):
    """A packed evaluation network: ``forward(x) -> logits`` (no auxiliary tower), inference only."""

    use_plans: bool = True
    """Run each cell as one extension call (:mod:`cpnas.deploy.cellplan`); ``False``: op by op, as PyTorch modules."""
    isa: str | None = None
    """The instruction set whose build of the extension the planned cells run (``None``: the default build)."""
    clock: dict[str, float] | None = None
    """When a dict, planned forwards add their seconds in the ``stem``, the ``cells`` and the ``head`` to it."""

    def __init__(self, body: nn.Module, meta: PackedMeta | None = None) -> None:
        super().__init__()
        self.body = body
        self.meta = meta
        self._plans: list | None = None  # per cell: its CellPlan or None; built at the first forward
        self._tracing = False  # trace_integers runs op by op
        body.register_load_state_dict_post_hook(lambda module, keys: self._drop_plans())

    def _drop_plans(self) -> None:
        self._plans = None  # the plans hold the kernel-layout tensors, which loading replaces

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        body = self.body
        if not self.use_plans or self._tracing or not hasattr(body, "cells"):
            out = body(x)
            return out[0] if isinstance(out, tuple) else out
        if self._plans is None:
            from cpnas.deploy.cellplan import cell_plan

            self._plans = [cell_plan(cell) for cell in body.cells]
        clock = self.clock
        t0 = time.perf_counter() if clock is not None else 0.0
        if hasattr(body, "stem"):
            s0 = s1 = body.stem(x)
        else:
            s0 = body.stem0(x)
            s1 = body.stem1(s0)
        if clock is not None:
            t1 = time.perf_counter()
        for cell, plan in zip(body.cells, self._plans):
            s0, s1 = s1, (plan.forward(_cl(s0), _cl(s1)) if plan is not None else cell(s0, s1))
        if clock is not None:
            t2 = time.perf_counter()
        logits = body.classifier(torch.flatten(body.global_pooling(s1), 1))
        if clock is not None:
            for name, dt in (("stem", t1 - t0), ("cells", t2 - t1), ("head", time.perf_counter() - t2)):
                clock[name] = clock.get(name, 0.0) + dt
        return logits

    def planned_cells(self) -> int:
        """How many cells run as one extension call (builds the plans)."""
        from cpnas.deploy.cellplan import cell_plan

        if self._plans is None:
            self._plans = [cell_plan(cell, self.isa) for cell in self.body.cells]
        return sum(p is not None for p in self._plans)

    def counts(self) -> dict[str, int]:
        """How many convs of each kind the packed form runs."""
        mods = list(self.modules())
        return {"xnor_1x1": sum(isinstance(m, PackedConv1x1) for m in mods),
                "int8_depthwise": sum(isinstance(m, PackedDepthwise) and m.binarize_input for m in mods),
                "float_depthwise": sum(isinstance(m, PackedDepthwise) and not m.binarize_input for m in mods),
                "binary_kept_float": sum(isinstance(m, BinaryConv2d) for m in mods)}

    @contextmanager
    def trace_integers(self) -> Iterator[list[torch.Tensor]]:
        """Collect the integer dot products of every XNOR 1×1 conv, in execution order."""
        found: list[torch.Tensor] = []
        convs = [m for m in self.modules() if isinstance(m, PackedConv1x1)]
        for m in convs:
            m.trace = found
        self._tracing = True
        try:
            yield found
        finally:
            self._tracing = False
            for m in convs:
                m.trace = None


def pack_network(model: nn.Module, meta: PackedMeta | None = None) -> PackedNetwork:
    """The packed inference form of an evaluation network (left unchanged); see the module docstring.

    Needs the C++ extension at the first forward call, not here.
    """
    body = copy.deepcopy(model).eval()
    if hasattr(body, "auxiliary"):
        body.auxiliary = None  # a training-only tower
    _replace(body)
    left = [name for name, m in body.named_modules() if isinstance(m, BinaryConv2d)]
    if left:
        log.info("%d binary convs keep their float form (real inputs or shapes without a packed kernel): %s",
                 len(left), ", ".join(left[:5]) + (" …" if len(left) > 5 else ""))
    body = body.to(memory_format=torch.channels_last)
    return PackedNetwork(body, meta)


def simulate(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The simulated 1-bit network's logits, in the memory format the packed network uses (channels_last)."""
    net = model.eval().to(memory_format=torch.channels_last)
    with torch.no_grad():
        out = net(x.contiguous(memory_format=torch.channels_last))
    return out[0] if isinstance(out, tuple) else out


@contextmanager
def simulated_integers(model: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Collect ``conv1x1(sign(x), sign(W))`` (exact integers, float64) of every binary 1×1 conv of ``model``."""
    found: list[torch.Tensor] = []

    def hook(conv, args):
        x = args[0]
        if conv.stride != (1, 1):
            x = x[:, :, :: conv.stride[0], :: conv.stride[1]]
        dot = F.conv2d(sign(x).double(), sign(conv.weight.detach()).double())
        found.append(dot.permute(0, 2, 3, 1).reshape(-1, conv.out_channels).to(torch.int32))

    handles = [m.register_forward_pre_hook(hook) for m in model.modules() if _binary_1x1(m)]
    try:
        yield found
    finally:
        for h in handles:
            h.remove()


def _binary_depthwise(m: nn.Module) -> bool:
    return isinstance(m, BinaryConv2d) and m.binarize_input and m.groups > 1 and m.groups == m.in_channels


def _depthwise_exact(conv: BinaryConv2d, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``α·d`` rounded once to float32, and the integers ``d = conv(sign(x), sign(W))`` (float64, exact)."""
    w = conv.weight.detach()
    d = F.conv2d(sign(x).double(), sign(w).double(), None, conv.stride, conv.padding, conv.dilation, conv.groups)
    return (scaling_factor(w).double().view(1, -1, 1, 1) * d).float(), d


@contextmanager
def exact_depthwise(model: nn.Module, ties: dict[str, int] | None = None) -> Iterator[None]:
    """Within the block, every binary depthwise conv of ``model`` outputs ``α·d`` with ``d`` its exact integer.

    The float32 conv sums its ±α terms with rounding, so where ``d = 0`` (border pixels
    with an even number of taps inside the image) it returns ±0 or a residual of a few
    ulps whose sign depends on the order of summation, i.e. on the kernel form. The
    packed network computes ``d`` exactly and takes sign(0) = +1 (§2.4); so does the
    simulated network within this block. With ``ties``, counts ``"ties"`` (outputs with
    ``d = 0``) and ``"ties_negative"`` (those the float32 conv made negative, which the
    following sign turns to −1) instead of replacing the outputs.
    """
    def hook(conv, args, out):
        exact, d = _depthwise_exact(conv, args[0])
        if ties is not None:
            tie = d == 0
            ties["ties"] = ties.get("ties", 0) + int(tie.sum())
            ties["ties_negative"] = ties.get("ties_negative", 0) + int((tie & (out < 0)).sum())
            return None
        return exact.contiguous(memory_format=torch.channels_last) if out.is_contiguous(
            memory_format=torch.channels_last) else exact

    handles = [m.register_forward_hook(hook) for m in model.modules() if _binary_depthwise(m)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def to_bytes(packed: PackedNetwork) -> bytes:
    """The packed model file (:mod:`cpnas.deploy.modelfile`): its persistent buffers, real parameters and meta."""
    from cpnas.deploy import modelfile

    meta = None if packed.meta is None else {**packed.meta.__dict__, "reductions": packed.meta.reductions}
    return modelfile.encode(meta, packed.body.state_dict())


def payload_bits(packed: PackedNetwork) -> dict[str, int]:
    """Bits of what the file stores, by kind: packed sign words, and 32-bit reals (BN statistics excluded)."""
    bits = {"sign_words": 0, "real": 0, "bn_running_stats": 0}
    for name, t in packed.body.state_dict().items():
        if name.endswith("weight_bits"):
            bits["sign_words"] += t.numel() * 64
        elif name.endswith(("running_mean", "running_var", "num_batches_tracked")):
            bits["bn_running_stats"] += t.numel() * t.element_size() * 8
        else:
            bits["real"] += t.numel() * t.element_size() * 8
    return bits


def build_network(meta: PackedMeta) -> nn.Module:
    """The 1-bit evaluation network (random weights) whose structure ``meta`` describes."""
    from cpnas.binary import BINARY
    from cpnas.genotype import Genotype
    from cpnas.networks import NetworkCIFAR, NetworkImageNet

    net_cls = NetworkImageNet if meta.dataset == "imagenet" else NetworkCIFAR
    return net_cls(Genotype.from_dict(meta.genotype), C=meta.channels, num_classes=meta.num_classes,
                   layers=meta.layers, auxiliary=False, precision=BINARY)


def load_packed(data: bytes | str | os.PathLike, build: Callable[[PackedMeta], nn.Module] | None = None,
                source: str | None = None) -> PackedNetwork:
    """Rebuild a packed network from :func:`to_bytes` (bytes or a path); ``build(meta)`` gives the structure.

    A bad, truncated or mismatched file is one :class:`~cpnas.errors.CpnasError` line.
    """
    from cpnas.deploy import modelfile
    from cpnas.errors import CpnasError

    if isinstance(data, bytes):
        source = source or "the packed model file"
        meta_dict, state = modelfile.decode(data, source)
    else:
        source = source or str(data)
        meta_dict, state = modelfile.read(data)
    try:
        meta = PackedMeta(**{**meta_dict, "reductions": (None if meta_dict.get("reductions") is None
                                                          else tuple(meta_dict["reductions"]))})
        packed = pack_network((build or build_network)(meta).eval(), meta)
        packed.body.load_state_dict(state)
    except (TypeError, ValueError, KeyError, RuntimeError) as exc:
        raise CpnasError(f"{source}: the packed model does not rebuild ({str(exc).splitlines()[0][:300]})") from None
    return packed
