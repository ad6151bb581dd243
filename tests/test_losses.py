"""The CP loss (Eq. 3-4): kernel term, center term, both readings of H, hand-computed oracles."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cpnas.binary import BINARY, REAL, BinaryConv2d
from cpnas.config import LossConfig
from cpnas.errors import CpnasError
from cpnas.losses import CPLoss, center_loss, kernel_loss, make_loss, update_centers


class Tiny(nn.Module):
    """conv → global pooling → classifier, with the convs built by a precision (Child or Parent)."""

    def __init__(self, precision, c: int = 2, num_classes: int = 3) -> None:
        super().__init__()
        self.conv = precision.conv(1, c, 2)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x):
        f = self.conv(x)
        return self.classifier(torch.flatten(self.global_pooling(f), 1)), None


def set_weight(module: nn.Module, values) -> None:
    with torch.no_grad():
        module.weight.copy_(torch.tensor(values, dtype=torch.float32).view_as(module.weight))


# --- kernel term -------------------------------------------------------------


def test_kernel_term_is_zero_when_filters_are_already_binary():
    conv = BinaryConv2d(3, 4, 3, bias=False)
    signs = torch.where(torch.randn(4, 3, 3, 3) >= 0, 1.0, -1.0)
    scales = torch.tensor([0.5, 0.25, 2.0, 0.125]).view(4, 1, 1, 1)  # exact in binary floating point
    set_weight(conv, (scales * signs).tolist())
    assert kernel_loss([(conv.weight, conv.weight)]).item() == 0.0


def test_kernel_term_matches_a_hand_computation():
    conv = BinaryConv2d(1, 2, (1, 2), bias=False)
    set_weight(conv, [[1.0, 3.0], [-2.0, 0.5]])
    # filter 0: α = 2, Ĥ = [2, 2], MSE = ((1-2)² + (3-2)²)/2 = 1
    # filter 1: α = 1.25, Ĥ = [-1.25, 1.25], MSE = (0.75² + 0.75²)/2 = 0.5625
    value = kernel_loss([(conv.weight, conv.weight)])
    assert value.item() == pytest.approx(1.5625)
    assert value.item() > 0


def test_kernel_term_gradient_reaches_the_latent_weights():
    conv = BinaryConv2d(1, 1, (1, 2), bias=False)
    set_weight(conv, [[0.2, 0.6]])
    kernel_loss([(conv.weight, conv.weight)]).backward()
    # L = mean((w − α s)²), α = mean|w| = 0.4, s = (1, 1), so Ĥ = (0.4, 0.4).
    # dL/dw_i = (2/n) Σ_j (w_j − Ĥ_j)(δ_ij − dĤ_j/dw_i); through α: dĤ_j/dw_i = s_j sign(w_i)/n,
    # through the clipped STE of sign: α·1{|w_i| ≤ 1} on j = i.
    w = torch.tensor([0.2, 0.6])
    r = w - 0.4  # (−0.2, 0.2)
    n = 2
    grad = torch.stack([(2 / n) * (r[i] * (1 - 0.4) - r.sum() / n) for i in range(n)])
    assert torch.allclose(conv.weight.grad.flatten(), grad, atol=1e-6)
    assert conv.weight.grad.abs().sum() > 0


def test_kernel_term_sums_over_layers():
    a, b = BinaryConv2d(1, 2, (1, 2), bias=False), BinaryConv2d(1, 1, (1, 2), bias=False)
    set_weight(a, [[1.0, 3.0], [-2.0, 0.5]])
    set_weight(b, [[0.2, 0.6]])
    total = kernel_loss([(a.weight, a.weight), (b.weight, b.weight)]).item()
    assert total == pytest.approx(1.5625 + 0.04)


# --- center term -------------------------------------------------------------


def test_center_term_is_zero_at_the_class_means():
    centers = torch.tensor([[1.0, 2.0], [-1.0, 0.5], [3.0, 3.0]])
    target = torch.tensor([0, 2, 0, 1])
    assert center_loss(centers[target], target, centers).item() == 0.0


def test_center_term_matches_a_hand_computation():
    centers = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    features = torch.tensor([[1.0, 2.0], [1.0, 0.0], [3.0, 1.0]])
    target = torch.tensor([0, 1, 1])
    # ‖(1,2)‖² = 5, ‖(0,−1)‖² = 1, ‖(2,0)‖² = 4; mean over the batch = 10/3
    assert center_loss(features, target, centers).item() == pytest.approx(10 / 3)
    # a feature *map* is flattened per sample: the same numbers as 1×1×2 maps
    assert center_loss(features.view(3, 2, 1, 1), target, centers).item() == pytest.approx(10 / 3)


def test_update_centers_running_mean():
    centers = torch.zeros(3, 2)
    seen = torch.zeros(3, dtype=torch.bool)
    update_centers(centers, seen, torch.tensor([[2.0, 0.0], [4.0, 2.0]]), torch.tensor([1, 1]), 0.9)
    assert torch.equal(centers[1], torch.tensor([3.0, 1.0]))  # first sight: the batch mean
    assert seen.tolist() == [False, True, False]
    update_centers(centers, seen, torch.tensor([[13.0, 11.0]]), torch.tensor([1]), 0.9)
    assert torch.allclose(centers[1], torch.tensor([0.9 * 3 + 0.1 * 13, 0.9 * 1 + 0.1 * 11]))
    assert torch.equal(centers[0], torch.zeros(2)) and torch.equal(centers[2], torch.zeros(2))


# --- the loss object ---------------------------------------------------------


def _batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(4, 1, 3, 3, generator=g), torch.tensor([0, 1, 2, 0])


def test_cp_loss_is_ce_plus_the_weighted_terms():
    torch.manual_seed(0)
    child = Tiny(BINARY)
    cfg = LossConfig(kernel_weight=0.5, center_lambda=0.2, center_momentum=0.9)
    loss_fn = CPLoss(child, num_classes=3, config=cfg)
    x, y = _batch()
    out = child(x)
    total = loss_fn(out, y)
    ce = nn.functional.cross_entropy(out[0], y)
    kernel = kernel_loss([(child.conv.weight, child.conv.weight)])
    # first batch: every class mean starts at its batch mean
    f = child.conv(x).flatten(1)
    means = torch.stack([f[y == k].mean(0) for k in range(3)])
    center = center_loss(f, y, means)
    assert total.item() == pytest.approx((ce + 0.5 * kernel + 0.1 * center).item(), rel=1e-5)
    assert loss_fn.last["center"] == pytest.approx(center.item(), rel=1e-5)
    # the means were kept and move with momentum on the next batch
    assert torch.allclose(loss_fn.centers, means.detach(), atol=1e-6)


def test_cp_loss_gradient_reaches_the_latent_weights_through_kernel_and_features():
    torch.manual_seed(0)
    child = Tiny(BINARY)
    loss_fn = CPLoss(child, num_classes=3, config=LossConfig(center_lambda=0.0))
    x, y = _batch()
    loss_fn(child(x), y).backward()
    ce_only = Tiny(BINARY)
    ce_only.load_state_dict(child.state_dict())
    nn.functional.cross_entropy(ce_only(x)[0], y).backward()
    assert not torch.allclose(child.conv.weight.grad, ce_only.conv.weight.grad)


def test_parent_reading_uses_the_parents_filters():
    torch.manual_seed(0)
    child, parent = Tiny(BINARY), Tiny(REAL)
    x, y = _batch()
    parent_cfg = LossConfig(kernel_source="parent")
    child_cfg = LossConfig(kernel_source="child")

    def kernel(cfg, parent_module):
        return CPLoss(child, num_classes=3, config=cfg, parent=parent_module).kernel_term().item()

    set_weight(parent.conv, torch.ones(2, 1, 2, 2).tolist())
    k1 = kernel(parent_cfg, parent)
    # oracle: Σ_c mean((H^P_c − α_c sign(W_c))²)
    w = child.conv.weight.detach()
    alpha = w.abs().mean(dim=(1, 2, 3), keepdim=True)
    oracle = (1.0 - alpha * torch.where(w >= 0, 1.0, -1.0)).pow(2).flatten(1).mean(1).sum()
    assert k1 == pytest.approx(oracle.item(), rel=1e-6)
    set_weight(parent.conv, (-torch.ones(2, 1, 2, 2)).tolist())
    assert kernel(parent_cfg, parent) != pytest.approx(k1)
    # the child reading ignores the Parent entirely
    c1 = kernel(child_cfg, parent)
    set_weight(parent.conv, torch.full((2, 1, 2, 2), 7.0).tolist())
    assert kernel(child_cfg, parent) == c1 == kernel(child_cfg, None)
    # the Parent is a frozen target: no gradient reaches it, the child's latent weights get one
    loss = CPLoss(child, num_classes=3, config=parent_cfg, parent=parent)
    loss(child(x), y).backward()
    assert parent.conv.weight.grad is None and child.conv.weight.grad is not None


def test_parent_reading_needs_a_matching_parent():
    child = Tiny(BINARY)
    with pytest.raises(CpnasError, match="needs a trained full-precision Parent"):
        CPLoss(child, num_classes=3, config=LossConfig(kernel_source="parent"))
    with pytest.raises(CpnasError, match="shape"):
        CPLoss(child, num_classes=3, config=LossConfig(kernel_source="parent"), parent=Tiny(REAL, c=3))
    with pytest.raises(CpnasError, match="no full-precision convolution named 'conv'"):
        CPLoss(child, num_classes=3, config=LossConfig(kernel_source="parent"), parent=Tiny(BINARY))
    with pytest.raises(CpnasError, match="kernel_source"):
        CPLoss(child, num_classes=3, config=LossConfig(kernel_source="teacher"))


def test_cp_loss_state_round_trips_and_needs_a_binary_network():
    torch.manual_seed(0)
    child = Tiny(BINARY)
    loss_fn = CPLoss(child, num_classes=3)
    x, y = _batch()
    loss_fn(child(x), y)
    other = CPLoss(child, num_classes=3)
    other.load_state_dict(loss_fn.state_dict())
    assert torch.equal(other.centers, loss_fn.centers) and torch.equal(other.seen, loss_fn.seen)
    assert set(loss_fn.pop_stats()) == {"loss_ce", "loss_kernel", "loss_center"}
    with pytest.raises(CpnasError, match="1-bit network"):
        make_loss("cp", Tiny(REAL), num_classes=3)
    with pytest.raises(CpnasError, match="unknown loss"):
        make_loss("mse", child, num_classes=3)


def test_cp_loss_on_an_evaluation_network(data_dir):
    """The hook finds the last cell's output in a real evaluation network (with its auxiliary tower)."""
    from cpnas.genotype import load_genotype
    from cpnas.networks import NetworkCIFAR

    torch.manual_seed(0)
    net = NetworkCIFAR(load_genotype(data_dir / "darts_v2.json"), C=4, layers=3, auxiliary=True).train()
    loss_fn = CPLoss(net, num_classes=10, aux_weight=0.4)
    x, y = torch.randn(6, 3, 8, 8), torch.arange(6)
    total = loss_fn(net(x), y)
    assert torch.isfinite(total) and loss_fn.centers.shape == (10, 4 * 16 * 2 * 2)  # 4 nodes × C=16 after two reductions, 2×2
    total.backward()
