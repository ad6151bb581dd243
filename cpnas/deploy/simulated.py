"""The simulated 1-bit network's side of the exactness check: its logits, its integers, its depthwise ties."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from cpnas.binary import BinaryConv2d, sign
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


@contextmanager
def depthwise_ties(model: nn.Module, ties: dict[str, int]) -> Iterator[None]:
    """Within the block, count the ties of every binary depthwise conv of ``model`` into ``ties``.

    A tie is an output whose integer ``d = conv(sign(x), sign(W))`` is 0 (border pixels
    with an even number of taps inside the image): the float32 conv returns there the
    rounding residual of its sum of ``±α`` terms, ±0 or an ulp or so, and the sign that
    follows takes its sign (the packed kernel reproduces it, :mod:`cpnas.deploy.packed`).
    Counts ``"ties"`` and ``"ties_negative"`` (those whose float32 output is negative,
    which sign(0) = +1 on exact integers would have made +1).
    """
    def hook(conv, args, out):
        w = conv.weight.detach()
        d = F.conv2d(sign(args[0]).double(), sign(w).double(), None, conv.stride, conv.padding, conv.dilation,
                     conv.groups)
        tie = d == 0
        ties["ties"] = ties.get("ties", 0) + int(tie.sum())
        ties["ties_negative"] = ties.get("ties_negative", 0) + int((tie & (out < 0)).sum())

    handles = [m.register_forward_hook(hook) for m in model.modules() if _binary_depthwise(m)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()
