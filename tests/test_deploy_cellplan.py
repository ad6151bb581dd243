"""A packed cell as one extension call (``cpnas.deploy.cellplan``): bit-identical to the packed cell run op by op.

The op-by-op packed network is itself checked against the simulated one (``tests/test_deploy.py``), integer by
integer; here the planned network must give the very same logits, run no Python per op, and follow its weights
when they are loaded again. The simulated network's kernel forms are fixed (``CPNAS_FORMS``), as in
``tests/test_deploy.py``.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cpnas.deploy import kernels
from cpnas.deploy.measure import LOGIT_TOLERANCE, exactness
from cpnas.deploy.pair import calibrate_bn, sample_images, trained_looking_bn
from cpnas.deploy.network import pack_network
from cpnas.genotype import DARTS_V2, Genotype
from cpnas.networks import NetworkCIFAR

pytestmark = [pytest.mark.skipif(kernels.toolchain_missing() is not None,
                                 reason=f"no {kernels.toolchain_missing()} to build the XNOR-popcount extension"),
              pytest.mark.usefixtures("default_forms")]  # the simulated network's forms fixed

FOUND_CELL = Genotype.from_dict({
    "normal": [["max_pool_3x3", 0, 2], ["skip_connect", 1, 2], ["avg_pool_3x3", 2, 3], ["dil_conv_5x5", 0, 4],
               ["max_pool_3x3", 1, 4], ["sep_conv_5x5", 0, 5], ["sep_conv_5x5", 1, 5]],
    "normal_concat": [2, 3, 4, 5],
    "reduce": [["sep_conv_3x3", 0, 2], ["skip_connect", 1, 2], ["avg_pool_3x3", 0, 3], ["sep_conv_3x3", 1, 3],
               ["max_pool_3x3", 0, 4], ["sep_conv_5x5", 1, 4], ["sep_conv_5x5", 0, 5], ["dil_conv_5x5", 1, 5]],
    "reduce_concat": [2, 3, 4, 5]})
"""A cell of a CP-NAS search: a node with one input, a node read by another, and a factorized reduce
(``skip_connect`` at stride 2) as an edge whose output is added to a convolution's."""



def _network(genotype: Genotype, seed: int, **kw) -> NetworkCIFAR:
    torch.manual_seed(seed)
    net = NetworkCIFAR(genotype, C=8, layers=5, auxiliary=False, **kw)
    trained_looking_bn(net, seed)
    images, _ = sample_images(64)
    return calibrate_bn(net, torch.cat([images, torch.randn(64, 3, 32, 32)]))


def _op_by_op(packed, x: torch.Tensor) -> torch.Tensor:
    packed.use_plans = False
    try:
        return packed(x)
    finally:
        packed.use_plans = True


@pytest.mark.parametrize("genotype", [DARTS_V2, FOUND_CELL], ids=["darts_v2", "found"])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("size", [32, 30])
def test_planned_cells_equal_the_op_by_op_packed_network(genotype, batch, size, seed):
    """Size 30 makes a factorized reduce read past the image (15 → 8): a row of zeros, signs +1."""
    net = _network(genotype, seed)
    packed = pack_network(net)
    assert packed.planned_cells() == len(net.cells)
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))
    planned = packed(x)
    assert torch.equal(planned, _op_by_op(packed, x))
    assert torch.equal(packed(x), planned)  # the scratch memory, reused, holds nothing of the last call


def test_exactness_on_images_covers_the_planned_path(seed):
    net = _network(FOUND_CELL, seed)
    images, _ = sample_images(16)
    report = exactness(net, pack_network(net), images)
    assert report["cells_planned_equal_op_by_op"] and report["integers_equal"], report
    assert report["max_abs_diff"] <= LOGIT_TOLERANCE and report["argmax_equal"] and report["exact"]


def test_a_planned_cell_runs_no_python_per_op(seed):
    packed = pack_network(_network(DARTS_V2, seed))
    calls = []
    handles = [m.register_forward_hook(lambda *a: calls.append(1))
               for cell in packed.body.cells for m in cell.modules()]
    try:
        packed(torch.randn(1, 3, 32, 32))
        assert calls == []
        _op_by_op(packed, torch.randn(1, 3, 32, 32))
        assert calls  # the hooks do fire when the cells run op by op
    finally:
        for h in handles:
            h.remove()


def test_plans_follow_weights_loaded_after_a_forward(seed):
    a = pack_network(_network(DARTS_V2, seed))
    b = pack_network(_network(DARTS_V2, seed + 1))
    x = torch.randn(2, 3, 32, 32)
    before = a(x)
    a.body.load_state_dict(b.body.state_dict())
    after = a(x)
    assert not torch.equal(before, after)
    assert torch.equal(after, b(x))


def test_cells_without_packed_kernels_run_op_by_op_and_stay_exact(seed):
    """Table 2's ``*``: the first depthwise conv of every sep_conv keeps real inputs (float32), so no plan."""
    from cpnas.binary import get_precision

    net = _network(DARTS_V2, seed, precision=get_precision("binary*"))
    packed = pack_network(net)
    assert packed.planned_cells() < len(net.cells)
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(packed(x), _op_by_op(packed, x))


class _Plain(nn.Module):
    def forward(self, x):
        return x


def test_a_body_without_cells_runs_as_modules():
    packed = pack_network(_Plain())
    x = torch.randn(1, 3, 4, 4)
    assert torch.equal(packed(x), x)


@pytest.mark.parametrize("isa", [
    pytest.param("avx2", marks=pytest.mark.skipif(torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"),
                                                  reason="no AVX2 on this CPU")),
    "portable"])
def test_a_narrower_build_computes_the_same_logits_as_the_default_build(isa, seed):
    """The AVX2 or portable kernels (built with the wider instruction sets off, whatever this CPU has) against the
    default build, planned cells: the same integers, and the same signs at the depthwise convs' ties."""
    from cpnas.deploy.network import PackedNetwork

    packed = pack_network(_network(FOUND_CELL, seed))
    narrower = PackedNetwork(packed.body)
    narrower.isa = isa
    x = torch.randn(3, 3, 30, 30)
    assert kernels.extension(isa).simd_path() == isa
    assert torch.equal(narrower(x), packed(x))
