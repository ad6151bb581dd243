"""The search space (§2.2, Fig. 3-4): cell DAG, per-edge op pools, weight-sharing supernet.

A :class:`SearchCell` holds, on each of its 14 edges, one module per candidate op
(all built once). A *path* (:class:`SampledPath`) picks one op per edge for the normal
and the reduction cell (28 decisions); running a different path only selects
different modules, so sampling never rebuilds the network. A strategy that relaxes
the choice instead of sampling it extends the cell in its own module (PC-DARTS:
:mod:`cpnas.pcdarts`).

:class:`OpPools` holds the ops still alive on each edge; CP-NAS shrinks them by one
op per edge per round (Alg. 1 line 9).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import torch
from torch import nn

from cpnas.binary import Precision
from cpnas.genotype import NUM_INPUTS, cell_edges
from cpnas.ops import OPS, POOL_OPS, PRIMITIVES, ConvBN, FactorizedReduce, build_op

CELL_KINDS = ("normal", "reduce")


@dataclass(frozen=True)
class SampledPath:
    """One op per edge for the normal and the reduction cell: a sampled sub-network."""

    normal: tuple[str, ...]
    reduce: tuple[str, ...]

    def cell(self, kind: str) -> tuple[str, ...]:
        return self.normal if kind == "normal" else self.reduce

    def to_dict(self) -> dict[str, list[str]]:
        return {"normal": list(self.normal), "reduce": list(self.reduce)}

    @classmethod
    def from_dict(cls, d: dict) -> "SampledPath":
        return cls(tuple(d["normal"]), tuple(d["reduce"]))


class OpPools:
    """The remaining candidate ops O^(i,j) of every edge, for both cell kinds (Alg. 1).

    Starts with all K ops on every edge; :meth:`remove` drops one. Ops keep the
    order of :data:`cpnas.ops.PRIMITIVES`.
    """

    def __init__(self, nodes: int = 4, primitives: Sequence[str] = PRIMITIVES) -> None:
        self.edges = cell_edges(nodes)
        self.pools: dict[str, list[list[str]]] = {
            kind: [list(primitives) for _ in self.edges] for kind in CELL_KINDS}

    @property
    def K(self) -> int:
        """Current pool size (equal on every edge while CP-NAS runs)."""
        sizes = {len(p) for kind in CELL_KINDS for p in self.pools[kind]}
        if len(sizes) != 1:
            raise RuntimeError(f"edges have different pool sizes {sorted(sizes)}")
        return sizes.pop()

    def pool(self, kind: str, edge: int) -> list[str]:
        return self.pools[kind][edge]

    def remove(self, kind: str, edge: int, op: str) -> None:
        pool = self.pools[kind][edge]
        if op not in pool:
            raise ValueError(f"op {op!r} is not in the pool of {kind} edge {edge}: {pool}")
        if len(pool) == 1:
            raise ValueError(f"cannot empty the pool of {kind} edge {edge}")
        pool.remove(op)

    def final_path(self) -> SampledPath:
        """The path of the last op on every edge (valid once every pool has one op)."""
        if self.K != 1:
            raise RuntimeError(f"pools still hold {self.K} ops per edge")
        return SampledPath(*(tuple(p[0] for p in self.pools[kind]) for kind in CELL_KINDS))

    def state_dict(self) -> dict:
        return {kind: [list(p) for p in self.pools[kind]] for kind in CELL_KINDS}

    def load_state_dict(self, state: dict) -> None:
        self.pools = {kind: [list(p) for p in state[kind]] for kind in CELL_KINDS}


def preprocess(c_prev_prev: int, c_prev: int, c: int, reduction_prev: bool, precision: Precision,
               affine: bool) -> tuple[nn.Module, nn.Module]:
    """The pre-defined input-node preprocessing of §2.2 (1×1 conv, or factorized reduce).

    ``precision.preprocess_real_input`` (Table 2 ``**``) keeps their activations real.
    """
    real = precision.preprocess_real_input
    if reduction_prev:
        pre0: nn.Module = FactorizedReduce(c_prev_prev, c, precision, affine, real_input=real)
    else:
        pre0 = ConvBN(c_prev_prev, c, 1, 1, 0, precision, affine, real_input=real)
    pre1 = ConvBN(c_prev, c, 1, 1, 0, precision, affine, real_input=real)
    return pre0, pre1


class SearchCell(nn.Module):
    """A cell of the weight-sharing supernet, with every candidate op on every edge.

    The ops are built on ``op_channels`` channels (default: the cell's ``c``); a
    relaxation that sends only part of the channels through them (PC-DARTS,
    :mod:`cpnas.pcdarts`) subclasses the cell and passes fewer. The sampled-path
    :meth:`forward` needs ``op_channels == c``.
    """

    def __init__(self, nodes: int, c_prev_prev: int, c_prev: int, c: int, reduction: bool,
                 reduction_prev: bool, precision: Precision, op_channels: int | None = None) -> None:
        super().__init__()
        self.reduction = reduction
        self.nodes = nodes
        self.c = c
        self.op_channels = c if op_channels is None else op_channels
        self.edges = cell_edges(nodes)
        self.pre0, self.pre1 = preprocess(c_prev_prev, c_prev, c, reduction_prev, precision, affine=False)
        c_op = self.op_channels
        self.edge_ops = nn.ModuleList()
        for i, _ in self.edges:
            stride = 2 if reduction and i < NUM_INPUTS else 1
            ops = nn.ModuleDict()
            for name in PRIMITIVES:
                op = build_op(name, c_op, stride, precision, affine=False)
                if name in POOL_OPS:  # DARTS/PC-DARTS: a parameter-free BN after pooling in the supernet
                    op = nn.Sequential(op, nn.BatchNorm2d(c_op, affine=False))
                ops[name] = op
            self.edge_ops.append(ops)

    @property
    def multiplier(self) -> int:
        return self.nodes

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, ops: Sequence[str]) -> torch.Tensor:
        """Run the sampled path: ``ops[e]`` on edge e; node j = Σ_{i<j} o^(i,j)(N_i) (§2.2)."""
        states = [self.pre0(s0), self.pre1(s1)]
        e = 0
        for j in range(NUM_INPUTS, NUM_INPUTS + self.nodes):
            total = None
            for i in range(j):
                name = ops[e]
                if name != "none":
                    y = self.edge_ops[e][name](states[i])
                    total = y if total is None else total + y
                e += 1
            states.append(total if total is not None else self._zeros_like_node(states[1]))
        return torch.cat(states[NUM_INPUTS:], dim=1)

    def _zeros_like_node(self, s: torch.Tensor) -> torch.Tensor:
        stride = 2 if self.reduction else 1
        n, c, h, w = s.shape
        return s.new_zeros(n, c, math.ceil(h / stride), math.ceil(w / stride))


def covering_path(nodes: int = 4) -> SampledPath:
    """A fixed path that uses every op but ``none`` in both cells (timing probes: every kernel runs)."""
    ops = [op for op in PRIMITIVES if op != "none"]
    n = len(cell_edges(nodes))
    return SampledPath(tuple(ops[k % len(ops)] for k in range(n)), tuple(ops[(k + 3) % len(ops)] for k in range(n)))


def check_path(path: SampledPath, pools: OpPools | None = None, nodes: int = 4) -> None:
    """Raise ValueError if ``path`` has the wrong length, unknown ops, or ops outside the pools."""
    n = len(cell_edges(nodes))
    for kind in CELL_KINDS:
        ops = path.cell(kind)
        if len(ops) != n:
            raise ValueError(f"{kind} path has {len(ops)} ops, expected {n}")
        for e, op in enumerate(ops):
            if op not in OPS:
                raise ValueError(f"unknown op {op!r} on {kind} edge {e}")
            if pools is not None and op not in pools.pool(kind, e):
                raise ValueError(f"op {op!r} on {kind} edge {e} was already removed from its pool")


def iter_edges(nodes: int = 4) -> Iterable[tuple[int, int, int]]:
    """``(edge_index, i, j)`` for every edge of the cell."""
    for e, (i, j) in enumerate(cell_edges(nodes)):
        yield e, i, j
