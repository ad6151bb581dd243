"""WRN-22 baselines (Tables 1 and 3): structure, which layers stay real, forward and backward."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cpnas.binary import BINARY, REAL, BinaryConv2d
from cpnas.wrn import WRN_ARCHS, WideResNet, wrn22


def convs(model: nn.Module) -> dict[str, nn.Conv2d]:
    return {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}


def test_wrn22_structure():
    net = wrn22(REAL)
    c = convs(net)
    # stem + 3 groups × 3 blocks × 2 convs + 2 projection shortcuts (groups 2 and 3)
    assert len(c) == 1 + 18 + 2
    assert c["stem"].out_channels == 64  # as wide as group 1: the 64-64-128-256 WRN-22
    assert net.groups[0][0].shortcut is None
    assert [g[0].conv1.out_channels for g in net.groups] == [64, 128, 256]
    assert not any(isinstance(m, BinaryConv2d) for m in c.values())


def test_wrn22_binary_keeps_stem_and_classifier_real():
    net = wrn22(BINARY)
    c = convs(net)
    binary = {n for n, m in c.items() if isinstance(m, BinaryConv2d)}
    assert binary == set(c) - {"stem"}
    assert type(net.classifier) is nn.Linear
    assert not any(isinstance(m, nn.ReLU) for m in net.groups.modules())  # sign(relu(x)) ≡ +1


def test_wrn22_binary_real_shortcut():
    net = wrn22(BINARY, real_shortcut=True)
    for g in net.groups[1:]:
        assert type(g[0].shortcut) is nn.Conv2d
        assert isinstance(g[0].conv1, BinaryConv2d)


def test_textbook_wrn22_4_is_not_table3():
    """The 16-channel stem gives 4.29 M params and 619 M MACs — 4.4 % short of 647.70 M FLOPs."""
    from cpnas.efficiency import profile

    with torch.device("meta"):
        textbook = WideResNet(22, 4, stem_channels=16)
    p = profile(textbook, (3, 32, 32))
    assert p.real_macs == 619_104_768
    assert abs(p.flops_m / 647.70 - 1) > 0.04


@pytest.mark.parametrize("arch", list(WRN_ARCHS))
def test_forward_backward(arch, seed):
    # A narrow WRN-10-1 of the same definition keeps this fast; the arch's precision flags are reused.
    ref = WRN_ARCHS[arch]()
    net = WideResNet(10, 1, precision=ref.precision,
                     real_shortcut=type(ref.groups[1][0].shortcut) is nn.Conv2d)
    x = torch.randn(2, 3, 32, 32)
    out = net(x)
    assert out.shape == (2, 10)
    out.sum().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_bad_depth():
    with pytest.raises(ValueError, match="6n"):
        WideResNet(depth=21)
