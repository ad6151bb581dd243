"""PC-DARTS's relaxation of the search space (Xu et al., "PC-DARTS: Partial Channel Connections for
Memory-Efficient Architecture Search", ICLR 2020): the supernet the :mod:`cpnas.pcdarts` strategy trains.

The shared supernet (:class:`cpnas.space.SearchCell`, :class:`cpnas.networks.SearchNetwork`)
extended with PC-DARTS' mixed forward, both changes of which :meth:`PartialChannelCell.forward_mixed`
runs:

* **partial channel connections** (their §3.2, Eq. 2): 1/K of the channels of x_i go through
  the softmax(α)-weighted mixture of ops, the rest bypass it, and the two parts are
  concatenated and channel-shuffled (:func:`channel_shuffle`);
* **edge normalization** (their §3.3, Eq. 3): a softmax of β over the incoming edges of
  each node weighs the edges (:func:`normalize_edges`).

The derivation of a genotype from (α, β) is :func:`derive_genotype` (their §3.3; DARTS §2.4).
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import torch
from torch import nn

from cpnas.binary import Precision, shares_signs
from cpnas.genotype import NUM_INPUTS, Genotype, top2_genotype
from cpnas.networks import SearchNetwork
from cpnas.ops import PRIMITIVES
from cpnas.space import CELL_KINDS, SearchCell

NONE_INDEX = PRIMITIVES.index("none")


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet channel shuffle, used after each partial channel connection (their Eq. 2)."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class PartialChannelCell(SearchCell):
    """A supernet cell whose ops see 1/``partial_k`` of its channels (their §3.2), with the mixed forward."""

    def __init__(self, nodes: int, c_prev_prev: int, c_prev: int, c: int, reduction: bool,
                 reduction_prev: bool, precision: Precision, partial_k: int = 1) -> None:
        super().__init__(nodes, c_prev_prev, c_prev, c, reduction, reduction_prev, precision,
                         op_channels=c // partial_k)
        self.partial_k = partial_k

    def forward_mixed(self, s0: torch.Tensor, s1: torch.Tensor, op_weights: torch.Tensor,
                      edge_weights: torch.Tensor) -> torch.Tensor:
        """PC-DARTS forward (Xu et al., 2020, Eq. 2-4).

        ``op_weights`` (edges × K) are softmax(α) per edge; ``edge_weights`` (edges,)
        are the per-node softmax(β) of edge normalization. On each edge, a 1/k slice
        of the channels goes through the weighted sum of ops, the rest bypasses, and
        the result is channel-shuffled.
        """
        states = [self.pre0(s0), self.pre1(s1)]
        k, c_op = self.partial_k, self.op_channels
        e = 0
        for j in range(NUM_INPUTS, NUM_INPUTS + self.nodes):
            total = 0
            for i in range(j):
                x = states[i]
                x_op, x_by = x[:, :c_op], x[:, c_op:]
                mixed = sum(op_weights[e, p] * self.edge_ops[e][name](x_op)
                            for p, name in enumerate(PRIMITIVES) if name != "none")
                if x_by.shape[1]:
                    if self.reduction and i < NUM_INPUTS:
                        x_by = nn.functional.max_pool2d(x_by, 2, 2, ceil_mode=True)
                    y = channel_shuffle(torch.cat([mixed, x_by], dim=1), k)
                else:
                    y = mixed
                total = total + edge_weights[e] * y
                e += 1
            states.append(total)
        return torch.cat(states[NUM_INPUTS:], dim=1)


class PartialChannelNetwork(SearchNetwork):
    """The CP-NAS supernet (:class:`~cpnas.networks.SearchNetwork`) built of :class:`PartialChannelCell`.

    It runs only the mixed forward; its parameters and their names are those of the shared supernet.
    """

    def __init__(self, *args: Any, partial_k: int = 1, **kwargs: Any) -> None:
        super().__init__(*args, cell=functools.partial(PartialChannelCell, partial_k=partial_k), **kwargs)

    @shares_signs
    def forward_mixed(self, x: torch.Tensor, weights: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """``weights[kind] = (op_weights, edge_weights)`` for ``kind`` in normal/reduce."""
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            op_w, edge_w = weights["reduce" if cell.reduction else "normal"]
            s0, s1 = s1, cell.forward_mixed(s0, s1, op_w, edge_w)
        return self.classifier(torch.flatten(self.global_pooling(s1), 1))


class MixedForward(nn.Module):
    """The supernet's mixed forward (:meth:`PartialChannelNetwork.forward_mixed`) as a module's ``forward``.

    DistributedDataParallel only sees calls of its module's ``forward``; this adapter lets it
    wrap the PC-DARTS weight step. It owns no parameters of its own.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, weights: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        return self.net.forward_mixed(x, weights)


def normalize_edges(beta: torch.Tensor, nodes: int = 4) -> torch.Tensor:
    """Edge normalization (PC-DARTS §3.3, Eq. 3): softmax of β over the incoming edges of each node.

    ``beta`` has one entry per edge in :func:`cpnas.genotype.cell_edges` order
    (node j has the j edges from nodes 0..j−1); the result has the same shape and
    sums to 1 over the edges into every intermediate node.
    """
    parts, start = [], 0
    for j in range(NUM_INPUTS, NUM_INPUTS + nodes):
        parts.append(torch.softmax(beta[start:start + j], dim=-1))
        start += j
    if start != beta.shape[0]:
        raise ValueError(f"beta has {beta.shape[0]} entries; a cell of {nodes} nodes has {start} edges")
    return torch.cat(parts)


def derive_genotype(op_weights: Mapping[str, torch.Tensor], edge_weights: Mapping[str, torch.Tensor],
                    nodes: int = 4) -> Genotype:
    """PC-DARTS derivation (their §3.3; DARTS §2.4): the top-2 incoming edges of every node.

    ``op_weights[kind]`` is softmax(α) (edges × K), ``edge_weights[kind]`` the
    normalized β (edges,). Edge (i, j) weighs op o by ``softmax(α)_o · β̃_{i,j}``;
    its strength is the largest such weight over the non-``none`` ops, node j keeps
    its two strongest edges (ties: the lower source), each with its best
    non-``none`` op, as ``model_search.py``'s ``genotype()``.
    """
    ops, strengths = {}, {}
    for kind in CELL_KINDS:
        w = op_weights[kind].detach().double() * edge_weights[kind].detach().double()[:, None]
        w[:, NONE_INDEX] = float("-inf")
        best, idx = w.max(dim=1)
        ops[kind] = [PRIMITIVES[k] for k in idx.tolist()]
        strengths[kind] = best.tolist()
    return top2_genotype(ops["normal"], ops["reduce"], strengths["normal"], strengths["reduce"], nodes)
