"""WRN-22, the hand-crafted baseline of Tables 1 and 3, in full precision and in 1-bit form.

A Wide ResNet (Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016) of
depth ``d = 6n + 4`` has a 3×3 stem conv and three groups of ``n`` pre-activation
basic blocks (``BN → act → conv3×3 → BN → act → conv3×3`` plus a shortcut) of
widths ``16k, 32k, 64k``, the last two starting with stride 2, then
``BN → ReLU → global average pool → FC``. WRN-22 has ``n = 3``.

**Which WRN-22 the paper measures.** Table 3's full-precision row reads 4.33 M
parameters (Table 1), 138.27 Mbit and 647.70 M FLOPs on 32×32 CIFAR-10 inputs.
The textbook WRN-22-4 (stem of 16 channels, widths 64-128-256) gives 4.29 M
parameters, 137.6 Mbit and 619.1 M MACs, 4.4 % short on FLOPs. The network
that lands on all three numbers is WRN-22-4 whose **stem conv already outputs
16k = 64 channels** — the "64-64-128-256" kernel-stage configuration of the
1-bit papers the CP-NAS authors compare against (MCN, Wang et al. 2018; PCNN,
Gu et al. 2019; BONN, Zhao et al. 2019 — the same group's WRN-22). Its first
group then needs no projection shortcut; groups 2 and 3 open with a 1×1 stride-2
projection (as in the WRN reference code). Counting it with
:func:`cpnas.efficiency.profile`:

* conv + FC parameters 4 321 482, BN parameters 5 504, total 4 326 986
  → 4.33 M (Table 1's 4.33 M);
* memory 4 326 986 × 32 = 138.46 Mbit (+0.14 % vs 138.27; the paper's figure is
  4.321 M × 32, i.e. it leaves the BN parameters out — ``include_norm=False``
  gives 138.29 Mbit);
* conv + FC MACs 647.69 M (647.70 M FLOPs; a full-precision MAC is one "FLOP"
  in the paper's convention, see :mod:`cpnas.efficiency`).

The width factor alone cannot do it: k = 4 with a 16-channel stem is 4.4 % short
on FLOPs, k = 5 is already 6.7 M parameters.

**1-bit form.** Built from the same definition through the
:class:`~cpnas.binary.Precision` conv factory: every 3×3 conv inside the blocks is
a :class:`~cpnas.binary.BinaryConv2d` (1-bit weights and activations). The stem
conv and the classifier stay real (as in XNOR-Net, PCNN and BONN), and so do the
BN layers. The ReLUs in front of binary convs are removed — ``sign(relu(x))`` is
+1 everywhere — exactly as §2.2 removes them from the DARTS ops. The two 1×1
projection shortcuts are binary by default (``real_shortcut=False``); the Bi-Real
Net reading (Liu et al., 2018) keeps them real (``real_shortcut=True``).
Against Table 3's "WRN-22 (BONN)" row (5.71 Mbit, 17.03 M FLOPs) the readings give
(see :func:`cpnas.efficiency.profile`; BN counted / not counted):

* stem + FC real: 4.63 / 4.45 Mbit, 11.87 M FLOPs;
* stem + FC + shortcuts real: 5.90 / 5.72 Mbit, 15.99 M FLOPs.

The second reading without BN reproduces BONN's memory to 0.25 %; no reading of
the conv/FC MACs reaches 17.03 M (the remaining ≈1 M is of the size of the
element-wise BN, ReLU and residual additions, which the paper's convention does
not count elsewhere). The paper's 28.03× speedup for that row is also
inconsistent with its own numbers (647.70 / 17.03 = 38.03×).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from cpnas.binary import BINARY, REAL, Precision, get_precision

WRN22_DEPTH = 22
"""Table 1/3: WRN-22."""
WRN22_WIDEN = 4
"""Width factor k = 4: groups of 64, 128, 256 channels (the "64-64-128-256" WRN-22 of MCN/PCNN/BONN)."""
WRN_BASE_WIDTHS = (16, 32, 64)
"""Zagoruyko & Komodakis (2016), Table 1: group widths 16k, 32k, 64k."""


class WideBasicBlock(nn.Module):
    """Pre-activation wide basic block (Zagoruyko & Komodakis 2016, Fig. 1c/Table 1).

    ``out = conv2(act(bn2(conv1(act(bn1(x)))))) + shortcut``; when the block changes
    width or resolution the shortcut is a 1×1 conv on the pre-activated input
    ``act(bn1(x))``, as in the WRN reference code.
    """

    def __init__(self, c_in: int, c_out: int, stride: int, precision: Precision,
                 real_shortcut: bool = False) -> None:
        super().__init__()
        # sign(relu(x)) == +1 for every x: a ReLU in front of a binary conv would
        # erase its input, hence no ReLU in the 1-bit form (§2.2's reasoning).
        act: Callable[[], nn.Module] = nn.Identity if precision.binary else nn.ReLU
        self.bn1 = nn.BatchNorm2d(c_in)
        self.act1 = act()
        self.conv1 = precision.conv(c_in, c_out, 3, stride, 1)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.act2 = act()
        self.conv2 = precision.conv(c_out, c_out, 3, 1, 1)
        self.shortcut: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.shortcut = (REAL if real_shortcut else precision).conv(c_in, c_out, 1, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = self.act1(self.bn1(x))
        y = self.conv2(self.act2(self.bn2(self.conv1(o))))
        return y + (x if self.shortcut is None else self.shortcut(o))


class WideResNet(nn.Module):
    """WRN-d-k for 32×32 inputs: stem conv → 3 groups of wide blocks → BN-ReLU-pool-FC.

    ``stem_channels=None`` makes the stem as wide as the first group (16k, the
    configuration that matches Table 3; see the module docstring); pass 16 for the
    textbook WRN. ``precision`` is the conv factory of the blocks; the stem conv
    and the classifier are always real.
    """

    def __init__(self, depth: int = WRN22_DEPTH, widen_factor: int = WRN22_WIDEN, num_classes: int = 10,
                 precision: Precision | str = REAL, stem_channels: int | None = None,
                 real_shortcut: bool = False, in_channels: int = 3) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6n + 4 (e.g. 16, 22, 28), got {depth}")
        precision = get_precision(precision)
        n = (depth - 4) // 6
        widths = [b * widen_factor for b in WRN_BASE_WIDTHS]
        c = widths[0] if stem_channels is None else stem_channels
        self.precision = precision
        self.stem = nn.Conv2d(in_channels, c, 3, padding=1, bias=False)
        groups = []
        for g, width in enumerate(widths):
            blocks = []
            for b in range(n):
                stride = 2 if g > 0 and b == 0 else 1
                blocks.append(WideBasicBlock(c, width, stride, precision, real_shortcut))
                c = width
            groups.append(nn.Sequential(*blocks))
        self.groups = nn.Sequential(*groups)
        self.bn = nn.BatchNorm2d(c)
        self.relu = nn.ReLU()
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.groups(self.stem(x))
        x = self.global_pooling(self.relu(self.bn(x)))
        return self.classifier(torch.flatten(x, 1))


def wrn22(precision: Precision | str = REAL, *, num_classes: int = 10, real_shortcut: bool = False) -> WideResNet:
    """Table 3's WRN-22 (``REAL``) or its 1-bit form (``BINARY``); see the module docstring."""
    return WideResNet(WRN22_DEPTH, WRN22_WIDEN, num_classes, precision, real_shortcut=real_shortcut)


WRN_ARCHS: dict[str, Callable[[], WideResNet]] = {
    "wrn22": lambda: wrn22(REAL),
    "wrn22-binary": lambda: wrn22(BINARY),
    "wrn22-binary-real-shortcut": lambda: wrn22(BINARY, real_shortcut=True),
}
"""Named baselines (CLI ``--arch`` values and table rows): full precision; 1-bit with
stem and FC real; 1-bit with stem, FC and the two 1×1 projection shortcuts real."""
