"""The simulated 1-bit network's side of the exactness check: its logits, its integers, exact depthwise sums."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from cpnas.binary import BinaryConv2d, scaling_factor, sign
from cpnas.deploy.packed import _binary_1x1

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
