"""The final cell of a CP-NAS search: edges ranked by scores that differ between them (⚑ ``top2``)."""

from __future__ import annotations

import types

import torch

from cpnas.config import get_config
from cpnas.genotype import cell_edges, top2_cell_info
from cpnas.indicator import lifetime_zbar
from cpnas.space import CELL_KINDS, OpPools
from cpnas.strategies import CPNAS

EDGES = cell_edges(4)


def _finished_search(rounds, final_op="sep_conv_3x3", seed=0):
    """A CP-NAS strategy whose pools are down to ``final_op`` on every edge, with ``rounds`` as its history."""
    strategy = object.__new__(CPNAS)
    strategy.s = get_config("smoke").search
    strategy.ctx = types.SimpleNamespace(seed=seed)
    strategy.pools = OpPools(4)
    for kind in CELL_KINDS:
        strategy.pools.pools[kind] = [[final_op] for _ in EDGES]
    strategy.rounds = rounds
    strategy.edges = EDGES
    return strategy


def _round(values):
    return {"mean_z": {kind: [dict(v) for v in values] for kind in CELL_KINDS}}


def test_a_tied_last_round_ranks_edges_by_their_lifetime_scores():
    # Six rounds in which the op that survives scores higher on edges from later nodes, then a last
    # round (T = 1: two draws) in which every survivor comes from one draw and shares one z̄.
    early = [{"sep_conv_3x3": 0.2 + i / 100 + j / 1000, "max_pool_3x3": 0.1} for i, j in EDGES]
    last = [{"sep_conv_3x3": 0.5, "skip_connect": 0.4} for _ in EDGES]
    strategy = _finished_search([_round(early)] * 6 + [_round(last)])
    genotype, info = strategy.final_cell()
    for kind in ("normal", "reduce"):
        kept = {(i, j) for _, i, j in getattr(genotype, kind)}
        # the two best lifetime scores into node j are its two latest sources, not sources 0 and 1
        assert kept == {(j - 2, j) for j in range(2, 6)} | {(j - 1, j) for j in range(2, 6)}
    assert info["rng_decided_nodes"] == 0
    assert lifetime_zbar(strategy.rounds, "normal")[0]["sep_conv_3x3"] == sum(
        [0.2 + 0 / 100 + 2 / 1000] * 6 + [0.5]) / 7


def test_equal_scores_are_ordered_by_the_seeded_rng_not_by_index():
    ops = ["sep_conv_3x3"] * len(EDGES)
    scores = [0.5] * len(EDGES)
    picks = set()
    for seed in range(12):
        g, info = top2_cell_info(ops, ops, scores, scores, generator=torch.Generator().manual_seed(seed))
        picks.add(tuple(sorted((i, j) for _, i, j in g.normal)))
        assert info["rng_decided_nodes"] == 6  # nodes 3-5 of both cells (node 2 has exactly two inputs)
        again, _ = top2_cell_info(ops, ops, scores, scores, generator=torch.Generator().manual_seed(seed))
        assert again == g
    index_rule = tuple(sorted((i, j) for j in range(2, 6) for i in (0, 1)))
    assert len(picks) > 1 and picks != {index_rule}


def test_a_node_whose_edges_all_end_as_none_takes_their_best_other_ops():
    ops = ["sep_conv_3x3"] * len(EDGES)
    into_5 = [k for k, (_, j) in enumerate(EDGES) if j == 5]
    for k in into_5:
        ops[k] = "none"
    scores = [0.3] * len(EDGES)
    fallback = [None] * len(EDGES)
    for rank, k in enumerate(into_5):
        fallback[k] = ("dil_conv_3x3" if rank % 2 else "max_pool_3x3", 0.1 + rank / 10)
    g, info = top2_cell_info(ops, ops, scores, scores, fallback={"normal": fallback, "reduce": fallback})
    node5 = sorted((op, i) for op, i, j in g.normal if j == 5)
    assert node5 == [("dil_conv_3x3", 3), ("max_pool_3x3", 4)]  # the two best fallback scores: edges 3→5 and 4→5
    assert info["fallback_edges"] == 4 and info["short_nodes"] == 0
    bare, info = top2_cell_info(ops, ops, scores, scores)
    assert not [e for e in bare.normal if e[2] == 5] and info["short_nodes"] == 2
