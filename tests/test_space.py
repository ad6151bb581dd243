"""The search space (§2.2, Fig. 3, Alg. 1): cell DAG, op pools, weight-sharing supernet."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from cpnas.binary import BINARY, REAL
from cpnas.genotype import cell_edges
from cpnas.networks import SearchNetwork
from cpnas.ops import PRIMITIVES
from cpnas.space import OpPools, SampledPath, SearchCell, check_path, iter_edges

N_EDGES = 14


def small_net(precision=BINARY) -> SearchNetwork:
    # 3 cells with a reduction in the middle: a normal, a reduction and a reduction_prev cell
    return SearchNetwork(C=8, num_classes=5, layers=3, reduction_layers=(1,), precision=precision)


def path_of(normal, reduce) -> SampledPath:
    return SampledPath(tuple(normal), tuple(reduce))


def cycle_path(offset: int) -> SampledPath:
    """A path using many different ops: edge e gets PRIMITIVES[(e + offset) % 8]."""
    ops = [PRIMITIVES[(e + offset) % len(PRIMITIVES)] for e in range(N_EDGES)]
    return path_of(ops, ops[::-1])


# --- the cell DAG (Fig. 3) ----------------------------------------------------------

def test_cell_has_14_edges_into_the_4_intermediate_nodes():
    edges = cell_edges(4)
    assert len(edges) == N_EDGES == 2 + 3 + 4 + 5
    assert len(set(edges)) == N_EDGES
    assert all(i < j for i, j in edges)
    assert {j for _, j in edges} == {2, 3, 4, 5}
    assert Counter(j for _, j in edges) == {2: 2, 3: 3, 4: 4, 5: 5}  # node j has every i < j
    assert edges == tuple(sorted(edges, key=lambda e: (e[1], e[0])))  # by target, then source
    assert [(e, i, j) for e, i, j in iter_edges(4)] == [(e, i, j) for e, (i, j) in enumerate(edges)]


@pytest.mark.parametrize("nodes,expected", [(1, 2), (2, 5), (3, 9), (5, 20)])
def test_cell_edges_other_sizes(nodes, expected):
    assert len(cell_edges(nodes)) == expected


# --- op pools (Alg. 1) --------------------------------------------------------------

def test_op_pools_start_full_and_shrink():
    pools = OpPools()
    assert pools.K == 8
    for kind in ("normal", "reduce"):
        assert len(pools.pools[kind]) == N_EDGES
        assert all(pools.pool(kind, e) == list(PRIMITIVES) for e in range(N_EDGES))
    pools.remove("normal", 3, "max_pool_3x3")
    assert "max_pool_3x3" not in pools.pool("normal", 3)
    assert "max_pool_3x3" in pools.pool("normal", 4) and "max_pool_3x3" in pools.pool("reduce", 3)
    assert pools.pool("normal", 3) == [p for p in PRIMITIVES if p != "max_pool_3x3"]  # order kept
    with pytest.raises(RuntimeError, match="different pool sizes"):
        pools.K  # noqa: B018 - the property raises while edges disagree


def test_op_pools_errors():
    pools = OpPools()
    pools.remove("reduce", 0, "none")
    with pytest.raises(ValueError, match="'none' is not in the pool of reduce edge 0"):
        pools.remove("reduce", 0, "none")
    for op in PRIMITIVES[1:-1]:
        pools.remove("reduce", 0, op)
    assert pools.pool("reduce", 0) == ["sep_conv_5x5"]
    with pytest.raises(ValueError, match="cannot empty"):
        pools.remove("reduce", 0, "sep_conv_5x5")


def test_op_pools_final_path_and_state_round_trip():
    pools = OpPools()
    with pytest.raises(RuntimeError, match="still hold 8"):
        pools.final_path()
    for kind in ("normal", "reduce"):
        for e in range(N_EDGES):
            keep = PRIMITIVES[(e + (kind == "reduce")) % 8]
            for op in PRIMITIVES:
                if op != keep:
                    pools.remove(kind, e, op)
    assert pools.K == 1
    final = pools.final_path()
    assert final.normal == tuple(PRIMITIVES[e % 8] for e in range(N_EDGES))
    assert final.reduce == tuple(PRIMITIVES[(e + 1) % 8] for e in range(N_EDGES))
    copy = OpPools()
    copy.load_state_dict(pools.state_dict())
    assert copy.final_path() == final
    assert SampledPath.from_dict(final.to_dict()) == final


# --- check_path ---------------------------------------------------------------------

def test_check_path_accepts_valid_and_rejects_bad_paths():
    good = cycle_path(0)
    check_path(good)
    with pytest.raises(ValueError, match="normal path has 13 ops, expected 14"):
        check_path(path_of(good.normal[:-1], good.reduce))
    with pytest.raises(ValueError, match="unknown op 'conv_7x7' on reduce edge 2"):
        check_path(path_of(good.normal, good.reduce[:2] + ("conv_7x7",) + good.reduce[3:]))
    pools = OpPools()
    pools.remove("normal", 0, good.normal[0])
    with pytest.raises(ValueError, match="already removed"):
        check_path(good, pools)


# --- the weight-sharing supernet ------------------------------------------------------

def test_every_cell_edge_holds_every_op():
    cell = SearchCell(4, 8, 8, 8, reduction=False, reduction_prev=False, precision=BINARY)
    assert len(cell.edge_ops) == N_EDGES
    assert all(list(ops.keys()) == list(PRIMITIVES) for ops in cell.edge_ops)


def test_two_paths_run_without_rebuilding(seed):
    net = small_net().train()
    ids_before = [id(m) for m in net.modules()]
    n_params = sum(p.numel() for p in net.parameters())
    x = torch.randn(2, 3, 16, 16)
    outputs = []
    for path in (cycle_path(0), cycle_path(3)):
        check_path(path)
        net.zero_grad(set_to_none=True)
        y = net(x, path)
        assert y.shape == (2, 5)
        y.square().mean().backward()
        outputs.append(y.detach())
        # only the ops on the path receive gradients; the others are untouched
        for cell in net.cells:
            ops = path.reduce if cell.reduction else path.normal
            for e, edge in enumerate(cell.edge_ops):
                for name, op in edge.items():
                    grads = [p.grad for p in op.parameters()]
                    if name != ops[e]:
                        assert all(g is None for g in grads), f"unused op {name} on edge {e} got a gradient"
                    elif grads:
                        assert any(g is not None and g.abs().sum() > 0 for g in grads)
    assert [id(m) for m in net.modules()] == ids_before
    assert sum(p.numel() for p in net.parameters()) == n_params
    assert not torch.allclose(outputs[0], outputs[1])  # different sub-networks, different outputs


def test_unused_ops_keep_their_bn_statistics(seed):
    net = small_net().train()
    path = path_of(["sep_conv_3x3"] * N_EDGES, ["max_pool_3x3"] * N_EDGES)
    other = net.cells[0].edge_ops[0]["dil_conv_5x5"][-1]  # the BN of an op off the path
    before = other.running_mean.clone()
    net(torch.randn(2, 3, 16, 16), path)
    assert torch.equal(other.running_mean, before)
    assert not torch.equal(net.cells[0].edge_ops[0]["sep_conv_3x3"][-1][-1].running_mean,
                           torch.zeros(8))


@pytest.mark.parametrize("precision", [BINARY, REAL], ids=lambda p: p.name)
def test_all_none_path_still_runs(precision):
    net = small_net(precision).eval()
    none = path_of(["none"] * N_EDGES, ["none"] * N_EDGES)
    with torch.no_grad():
        y = net(torch.randn(2, 3, 16, 16), none)
    assert y.shape == (2, 5) and torch.isfinite(y).all()
    # every cell outputs zeros, so only the classifier's bias is left
    torch.testing.assert_close(y, net.classifier.bias.expand(2, 5))


def test_fig3_draws_the_14_edges_and_the_concat():
    from cpnas.plots import fig3_cell_dag

    source = fig3_cell_dag(4).source
    edges = [line.split("[")[0].strip() for line in source.splitlines() if "->" in line]
    assert sorted(e for e in edges if not e.endswith("out")) == sorted(f"{i} -> {j}" for i, j in cell_edges(4))
    assert sorted(e for e in edges if e.endswith("out")) == [f"{j} -> out" for j in (2, 3, 4, 5)]
