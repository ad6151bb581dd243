"""Networks (§2.2, §3.1): one definition in both precisions; shapes; published parameter counts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cpnas.binary import BINARY, PRECISIONS, REAL, BinaryConv2d
from cpnas.genotype import Genotype, load_genotype
from cpnas.networks import NetworkCIFAR, NetworkImageNet, SearchNetwork, default_reductions, drop_path
from cpnas.ops import PRIMITIVES
from cpnas.space import SampledPath


def n_params(model: nn.Module) -> int:
    """Parameters of the inference network: the auxiliary tower is excluded, as in DARTS' count."""
    return sum(p.numel() for name, p in model.named_parameters() if not name.startswith("auxiliary"))


@pytest.fixture(scope="module")
def darts_v2(data_dir):
    return load_genotype(data_dir / "darts_v2.json")


@pytest.fixture(scope="module")
def pcdarts(data_dir):
    return load_genotype(data_dir / "pcdarts_cifar.json")


# --- the search network: Child and Parent from one definition ----------------------------

def test_child_and_parent_share_one_architecture_definition():
    kwargs = dict(C=4, num_classes=10, layers=6, reduction_layers=(1, 3))
    child, parent = SearchNetwork(precision=BINARY, **kwargs), SearchNetwork(precision=REAL, **kwargs)
    child_state = {k: v.shape for k, v in child.state_dict().items()}
    parent_state = {k: v.shape for k, v in parent.state_dict().items()}
    assert child_state == parent_state
    assert [n for n, _ in child.named_parameters()] == [n for n, _ in parent.named_parameters()]
    parent.load_state_dict(child.state_dict())  # weights can move between them

    child_binary = [n for n, m in child.named_modules() if isinstance(m, BinaryConv2d)]
    child_convs = [n for n, m in child.named_modules() if isinstance(m, nn.Conv2d)]
    assert not any(isinstance(m, BinaryConv2d) for m in parent.modules())
    # ⚑ default: everything inside the cells is binary; the stem stays real
    assert set(child_convs) - set(child_binary) == {"stem.0"}
    assert all(n.startswith("cells.") for n in child_binary)


def test_search_network_shapes_and_reduction_positions(seed):
    net = SearchNetwork(C=4, num_classes=7, layers=6, reduction_layers=(1, 3)).eval()
    seen = []
    for cell in net.cells:
        cell.register_forward_hook(lambda m, args, out: seen.append(tuple(out.shape)))
    path = SampledPath(tuple(PRIMITIVES[e % 8] for e in range(14)), tuple(PRIMITIVES[(e + 5) % 8] for e in range(14)))
    with torch.no_grad():
        assert net(torch.randn(2, 3, 32, 32), path).shape == (2, 7)
    # "reduction cells in the second and fourth layers": channels double and H, W halve there
    assert seen == [(2, 16, 32, 32), (2, 32, 16, 16), (2, 32, 16, 16),
                    (2, 64, 8, 8), (2, 64, 8, 8), (2, 64, 8, 8)]
    assert [c.reduction for c in net.cells] == [False, True, False, True, False, False]


def test_reduction_positions_are_checked():
    with pytest.raises(ValueError, match=r"\[6\] are outside 0..5"):
        SearchNetwork(C=4, layers=6, reduction_layers=(1, 6))


# --- evaluation networks -------------------------------------------------------------------

def test_network_cifar_aux_logits_in_train_mode_only(darts_v2, seed):
    net = NetworkCIFAR(darts_v2, C=4, num_classes=10, layers=5, auxiliary=True).train()
    x = torch.randn(2, 3, 16, 16)
    logits, aux = net(x)
    assert logits.shape == (2, 10) and aux is not None and aux.shape == (2, 10)
    (logits.sum() + aux.sum()).backward()
    net.eval()
    with torch.no_grad():
        logits, aux = net(x)
    assert logits.shape == (2, 10) and aux is None
    no_aux = NetworkCIFAR(darts_v2, C=4, layers=5, auxiliary=False).train()
    assert no_aux(x)[1] is None and no_aux.auxiliary is None


def test_network_cifar_reduction_cells(darts_v2):
    assert default_reductions(10) == (3, 6)  # 8 normal + 2 reduction cells at 1/3 and 2/3 (§3.1)
    net = NetworkCIFAR(darts_v2, C=4, layers=10)
    assert [c.reduction for c in net.cells].count(True) == 2
    assert net.cells[3].reduction and net.cells[6].reduction


@pytest.mark.parametrize("precision", list(PRECISIONS.values()), ids=list(PRECISIONS))
def test_eval_network_precisions_have_the_same_parameters(darts_v2, precision):
    net = NetworkCIFAR(darts_v2, C=4, layers=5, precision=precision)
    ref = NetworkCIFAR(darts_v2, C=4, layers=5, precision=REAL)
    assert {k: v.shape for k, v in net.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}
    binary_convs = [n for n, m in net.named_modules() if isinstance(m, BinaryConv2d)]
    assert bool(binary_convs) == precision.binary
    assert all(n.startswith("cells.") for n in binary_convs)  # stem, classifier, aux tower stay real


def test_partial_concat_and_nodes_without_inputs_run(seed):
    # node 4 and 5 get no edge; the normal cell concatenates 2 nodes only
    g = Genotype.from_dict({"normal": [["sep_conv_3x3", 0, 2], ["skip_connect", 1, 3]], "normal_concat": [2, 3],
                            "reduce": [["max_pool_3x3", 0, 2], ["skip_connect", 1, 2]]})
    net = NetworkCIFAR(g, C=4, layers=4, auxiliary=False).eval()
    assert net.cells[0].multiplier == 2
    with torch.no_grad():
        logits, _ = net(torch.randn(2, 3, 16, 16))
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()


def test_network_imagenet_stem_takes_224_to_28(darts_v2, seed):
    net = NetworkImageNet(darts_v2, C=8, num_classes=11, layers=3, auxiliary=True).train()
    shapes = {}
    net.cells[0].register_forward_pre_hook(
        lambda m, args: shapes.update(s0=tuple(args[0].shape), s1=tuple(args[1].shape)))
    net.cells[0].register_forward_hook(lambda m, args, out: shapes.update(out=tuple(out.shape)))
    logits, aux = net(torch.randn(2, 3, 224, 224))
    assert shapes["s1"] == (2, 8, 28, 28)  # three stride-2 convs: 224 → 112 → 56 → 28 (§3.1)
    assert shapes["s0"] == (2, 8, 56, 56)  # stem0's output, factorized-reduced by the first cell
    assert shapes["out"] == (2, 4 * 8, 28, 28)
    assert logits.shape == (2, 11) and aux.shape == (2, 11)


def test_drop_path():
    x = torch.ones(64, 2, 1, 1)
    assert drop_path(x, 0.5, training=False) is x
    assert drop_path(x, 0.0, training=True) is x
    torch.manual_seed(0)
    y = drop_path(x, 0.5, training=True)
    assert set(y.flatten().tolist()) == {0.0, 2.0}  # dropped, or kept and rescaled by 1/keep


# --- parameter counts of published genotypes ------------------------------------------------
# The counts exclude the auxiliary tower, as DARTS' utils.count_parameters_in_MB does. They do
# not depend on the precision (a 1-bit weight is still a parameter), checked for DARTS V2.

@pytest.mark.parametrize("precision", [REAL, BINARY], ids=lambda p: p.name)
def test_darts_v2_cifar_params(darts_v2, precision):
    n = n_params(NetworkCIFAR(darts_v2, C=36, num_classes=10, layers=20, auxiliary=True, precision=precision))
    # DARTS (Liu et al., 2019) Table 1: 3.3M; DARTS' own code prints 3.349342 MB. We get 3,349,342.
    assert round(n / 1e6, 1) == 3.3
    assert abs(n - 3_349_342) / 3_349_342 < 0.01


def test_darts_v2_imagenet_params(darts_v2):
    n = n_params(NetworkImageNet(darts_v2, C=48, num_classes=1000, layers=14, auxiliary=True, precision=REAL))
    # DARTS Table 3 (ImageNet mobile setting): 4.7M; DARTS' code prints 4.718752 MB. We get 4,718,752.
    assert round(n / 1e6, 1) == 4.7
    assert abs(n - 4_718_752) / 4_718_752 < 0.01


def test_pcdarts_cifar_params(pcdarts):
    n = n_params(NetworkCIFAR(pcdarts, C=36, num_classes=10, layers=20, auxiliary=True, precision=REAL))
    # PC-DARTS (Xu et al., 2020) Table 1: 3.6M. We get 3,634,678 (+1.0%).
    assert abs(n - 3.6e6) / 3.6e6 < 0.03
