"""Genotypes: the public JSON form, strict validation, DARTS conversion, drawing.

A *genotype* is a found architecture: for the normal and the reduction cell, a
list of edges ``(op, from, to)``. Nodes 0 and 1 are the cell's two inputs (the
outputs of the two previous cells, N_{-1} and N_0 in §2.2), nodes 2..5 the
M = 4 intermediate nodes; node j sums its incoming edges and the cell output
concatenates the nodes listed in ``*_concat`` (default ``[2, 3, 4, 5]``).

Public JSON form (documented in the README)::

    {"normal": [["sep_conv_3x3", 0, 2], ["skip_connect", 1, 2], ...],
     "normal_concat": [2, 3, 4, 5],
     "reduce": [["max_pool_3x3", 0, 2], ...],
     "reduce_concat": [2, 3, 4, 5]}

A ``none`` edge may be omitted (it is dropped when loading). The classic DARTS
form, two ``[op, input]`` pairs per intermediate node, is accepted and converted.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from cpnas.errors import CpnasError
from cpnas.io import read_json, write_json
from cpnas.ops import OPS

NUM_INPUTS = 2
"""Every cell takes the outputs of the two previous cells (§2.2)."""


def cell_edges(nodes: int = 4) -> tuple[tuple[int, int], ...]:
    """All edges (i, j) of the fully connected cell DAG, i < j, j an intermediate node.

    With M = 4 intermediate nodes there are 2+3+4+5 = 14 edges (Fig. 3). The order
    (by target node, then source) is the order of every per-edge list in cpnas.
    """
    return tuple((i, j) for j in range(NUM_INPUTS, NUM_INPUTS + nodes) for i in range(j))


Edge = tuple[str, int, int]


@dataclass(frozen=True)
class Genotype:
    """A found architecture: edges of the normal and the reduction cell."""

    normal: tuple[Edge, ...]
    reduce: tuple[Edge, ...]
    normal_concat: tuple[int, ...] = (2, 3, 4, 5)
    reduce_concat: tuple[int, ...] = (2, 3, 4, 5)
    nodes: int = field(default=4, compare=False)

    def cell(self, kind: str) -> tuple[tuple[Edge, ...], tuple[int, ...]]:
        """``(edges, concat)`` of the ``normal`` or ``reduce`` cell."""
        if kind == "normal":
            return self.normal, self.normal_concat
        if kind == "reduce":
            return self.reduce, self.reduce_concat
        raise ValueError(f"cell kind must be 'normal' or 'reduce', got {kind!r}")

    def to_dict(self) -> dict[str, Any]:
        """The public JSON form."""
        return {
            "normal": [list(e) for e in self.normal],
            "normal_concat": list(self.normal_concat),
            "reduce": [list(e) for e in self.reduce],
            "reduce_concat": list(self.reduce_concat),
        }

    @classmethod
    def from_dict(cls, obj: Any, *, source: str = "genotype") -> "Genotype":
        """Validate and build a genotype from the public (or DARTS) JSON form.

        Raises :class:`CpnasError` with one line naming the problem.
        """
        if not isinstance(obj, dict):
            raise CpnasError(f"{source}: expected a JSON object with keys 'normal' and 'reduce', "
                             f"got {type(obj).__name__}")
        unknown = set(obj) - {"normal", "reduce", "normal_concat", "reduce_concat"}
        if unknown:
            raise CpnasError(f"{source}: unknown key(s) {sorted(unknown)}; expected normal, reduce, "
                             f"normal_concat, reduce_concat")
        cells = {}
        for kind in ("normal", "reduce"):
            if kind not in obj:
                raise CpnasError(f"{source}: missing key {kind!r}")
            cells[kind] = _parse_edges(obj[kind], f"{source}: {kind}")
            concat = obj.get(f"{kind}_concat", [2, 3, 4, 5])
            cells[f"{kind}_concat"] = _parse_concat(concat, f"{source}: {kind}_concat")
        return cls(**cells)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the public JSON form atomically."""
        return write_json(path, self.to_dict())

    def num_edges(self, kind: str) -> int:
        return len(self.cell(kind)[0])

    def draw(self, kind: str = "normal", *, title: str | None = None):
        """Draw one cell with graphviz (see :func:`draw_cell`)."""
        edges, concat = self.cell(kind)
        return draw_cell(edges, concat, title=title or f"{kind} cell")


def _parse_edges(value: Any, where: str) -> tuple[Edge, ...]:
    if not isinstance(value, list) or not value:
        raise CpnasError(f"{where}: expected a non-empty list of edges [op, from, to]")
    if all(isinstance(e, (list, tuple)) and len(e) == 2 for e in value):
        value = _from_darts_pairs(value, where)
    edges: list[Edge] = []
    seen: set[tuple[int, int]] = set()
    for k, e in enumerate(value):
        if not isinstance(e, (list, tuple)) or len(e) != 3:
            raise CpnasError(f"{where}: edge #{k} is {e!r}; expected [op, from, to]")
        op, src, dst = e
        if not isinstance(op, str) or op not in OPS:
            raise CpnasError(f"{where}: edge #{k} has unknown op {op!r}; valid ops are {', '.join(OPS)}")
        if not (_is_int(src) and _is_int(dst)):
            raise CpnasError(f"{where}: edge #{k} {list(e)}: 'from' and 'to' must be integers")
        if dst < NUM_INPUTS:
            raise CpnasError(f"{where}: edge #{k} {list(e)} goes into input node {dst}; "
                             f"nodes 0 and 1 are cell inputs and take no edges")
        if dst >= NUM_INPUTS + 4:
            raise CpnasError(f"{where}: edge #{k} {list(e)} goes into node {dst}; intermediate nodes are 2-5")
        if not 0 <= src < dst:
            raise CpnasError(f"{where}: edge #{k} {list(e)} needs 0 <= from < to (the cell is a DAG)")
        if (src, dst) in seen:
            raise CpnasError(f"{where}: edge ({src}, {dst}) appears twice")
        seen.add((src, dst))
        if op != "none":
            edges.append((op, int(src), int(dst)))
    if not edges:
        raise CpnasError(f"{where}: every edge is 'none'; the cell would output only zeros")
    return tuple(sorted(edges, key=lambda e: (e[2], e[1])))


def _from_darts_pairs(pairs: list, where: str) -> list[Edge]:
    """DARTS form: node 2+k//2 takes two ``(op, input)`` pairs (Liu et al., 2019, genotypes.py)."""
    if len(pairs) % 2:
        raise CpnasError(f"{where}: DARTS form needs two (op, input) pairs per node, got {len(pairs)} pairs")
    return [[op, src, NUM_INPUTS + k // 2] for k, (op, src) in enumerate(pairs)]


def _parse_concat(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not value or not all(_is_int(v) for v in value):
        raise CpnasError(f"{where}: expected a non-empty list of node indices, got {value!r}")
    bad = [v for v in value if not NUM_INPUTS <= v < NUM_INPUTS + 4]
    if bad:
        raise CpnasError(f"{where}: node(s) {bad} are not intermediate nodes (2-5)")
    repeated = sorted({v for v in value if value.count(v) > 1})
    if repeated:
        raise CpnasError(f"{where}: node(s) {repeated} are listed twice; each node enters the output once")
    return tuple(int(v) for v in value)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def load_genotype(path: str | os.PathLike) -> Genotype:
    """Load and validate a genotype JSON file (public or DARTS form)."""
    return Genotype.from_dict(read_json(path), source=str(path))


def genotype_from_ops(normal_ops: Sequence[str], reduce_ops: Sequence[str], nodes: int = 4) -> Genotype:
    """Genotype that keeps, on every edge of :func:`cell_edges`, the given op (``none`` = no edge).

    This is the ⚑ ``final_cell="keep_all"`` reading of Alg. 1's output: each edge
    keeps the one op left in its pool.
    """
    edges = cell_edges(nodes)
    for ops in (normal_ops, reduce_ops):
        if len(ops) != len(edges):
            raise ValueError(f"expected {len(edges)} ops per cell, got {len(ops)}")
    return Genotype.from_dict({
        "normal": [[op, i, j] for op, (i, j) in zip(normal_ops, edges)],
        "reduce": [[op, i, j] for op, (i, j) in zip(reduce_ops, edges)],
    })


def uniform_cell(generator: "torch.Generator", nodes: int = 4) -> Genotype:
    """A final cell drawn uniformly: each node takes two distinct inputs among its predecessors, each with
    one of the seven non-``none`` ops, for the normal and then the reduction cell (DARTS' final-cell space)."""
    import torch

    from cpnas.ops import PRIMITIVES

    kept_ops = [op for op in PRIMITIVES if op != "none"]
    cells: dict[str, list[list[Any]]] = {}
    for kind in ("normal", "reduce"):
        edges = []
        for j in range(NUM_INPUTS, NUM_INPUTS + nodes):
            for i in sorted(torch.randperm(j, generator=generator)[:2].tolist()):
                edges.append([kept_ops[int(torch.randint(len(kept_ops), (1,), generator=generator))], i, j])
        cells[kind] = edges
    return Genotype.from_dict(cells)


def top2_genotype(normal_ops: Sequence[str], reduce_ops: Sequence[str],
                  normal_scores: Sequence[float], reduce_scores: Sequence[float], nodes: int = 4, *,
                  generator: "torch.Generator | None" = None,
                  fallback: dict[str, Sequence[tuple[str, float] | None]] | None = None) -> Genotype:
    """DARTS-style reading (⚑ ``final_cell="top2"``): each node keeps its 2 best non-none edges.

    :func:`top2_cell_info` with its bookkeeping dropped.
    """
    return top2_cell_info(normal_ops, reduce_ops, normal_scores, reduce_scores, nodes, generator=generator,
                          fallback=fallback)[0]


def top2_cell_info(normal_ops: Sequence[str], reduce_ops: Sequence[str],
                   normal_scores: Sequence[float], reduce_scores: Sequence[float], nodes: int = 4, *,
                   generator: "torch.Generator | None" = None,
                   fallback: dict[str, Sequence[tuple[str, float] | None]] | None = None,
                   ) -> tuple[Genotype, dict[str, int]]:
    """``(genotype, info)``: every intermediate node keeps the two incoming edges of highest score.

    ``*_ops[k]`` is the op left on edge ``k`` of :func:`cell_edges` and ``*_scores[k]``
    the score that ranks it (CP-NAS: the lifetime z̄ of that op; PC-DARTS: its
    strength). Edges whose score is equal are ordered by a random key drawn from
    ``generator`` (default: a generator seeded with 0), never by their index.

    DARTS never keeps ``none``: an edge whose op is ``none`` is skipped. When a node
    has fewer than two other edges, ``fallback[kind][k] = (op, score)`` names the
    best non-``none`` op edge ``k`` had (for CP-NAS, the one with the highest
    lifetime z̄): those edges fill the node's free places in the order of their
    scores, so every node has two inputs, as in DARTS. Without a fallback a node
    may keep fewer (it sums what it has; a node with no input outputs zeros).

    ``info``: ``tied_edges`` (candidate edges whose score equals that of another
    candidate of the same node), ``rng_decided_nodes`` (nodes where such a tie
    straddled the top-2 cut, so the RNG chose which edge stays), ``fallback_edges``
    (edges kept through ``fallback``) and ``short_nodes`` (nodes left with < 2 inputs).
    """
    import torch

    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    edges = cell_edges(nodes)
    cells: dict[str, list[list[Any]]] = {}
    info = {"tied_edges": 0, "rng_decided_nodes": 0, "fallback_edges": 0, "short_nodes": 0}
    for kind, ops, scores in (("normal", normal_ops, normal_scores), ("reduce", reduce_ops, reduce_scores)):
        if len(ops) != len(edges) or len(scores) != len(edges):
            raise ValueError(f"expected {len(edges)} ops and scores per cell, got {len(ops)} and {len(scores)}")
        spare = (fallback or {}).get(kind) or [None] * len(edges)
        chosen: list[list[Any]] = []
        for j in range(NUM_INPUTS, NUM_INPUTS + nodes):
            into = [k for k, (_, jj) in enumerate(edges) if jj == j]
            keys = torch.rand(len(into), generator=gen, dtype=torch.float64).tolist()  # drawn for every node
            main = [(float(scores[k]), key, ops[k], edges[k][0]) for k, key in zip(into, keys) if ops[k] != "none"]
            values = [c[0] for c in main]
            ties = [c for c in main if values.count(c[0]) > 1]
            info["tied_edges"] += len(ties)
            ranked = sorted(main, key=lambda c: (-c[0], c[1]))
            if len(ranked) > 2 and ranked[1][0] == ranked[2][0]:
                info["rng_decided_nodes"] += 1
            kept = ranked[:2]
            if len(kept) < 2:
                extra = [(float(spare[k][1]), key, spare[k][0], edges[k][0]) for k, key in zip(into, keys)
                         if ops[k] == "none" and spare[k] is not None]
                extra = sorted(extra, key=lambda c: (-c[0], c[1]))[:2 - len(kept)]
                info["fallback_edges"] += len(extra)
                kept += extra
            info["short_nodes"] += len(kept) < 2
            chosen += [[op, i, j] for _, _, op, i in kept]
        cells[kind] = chosen or [["skip_connect", 1, NUM_INPUTS]]
    return Genotype.from_dict(cells), info


# --- drawing ---------------------------------------------------------------

_OP_COLOURS = {
    "skip_connect": "#4d4d4d", "avg_pool_3x3": "#1b9e77", "max_pool_3x3": "#66a61e",
    "dil_conv_3x3": "#7570b3", "dil_conv_5x5": "#e7298a", "sep_conv_3x3": "#d95f02",
    "sep_conv_5x5": "#e6ab02", "none": "#bbbbbb",
}


def digraph(name: str, **attrs: Any):
    """A ``graphviz.Digraph`` named ``name`` (PNG by default) whose plain-text form is that name.

    Jupyter shows the drawing; the text it stores beside it in an executed notebook is
    ``<graph 'name'>``, where graphviz's own would hold the object's memory address, a
    different one on every run.
    """
    return _graph_type()(name=name, **{"format": "png", **attrs})


@functools.cache
def _graph_type() -> type:
    import graphviz  # the Python package is light, but only drawing needs it

    class Graph(graphviz.Digraph):
        def __repr__(self) -> str:
            return f"<graph {self.name!r}>"

    return Graph


def draw_cell(edges: Iterable[Edge], concat: Sequence[int] = (2, 3, 4, 5), *, title: str = "cell"):
    """A ``graphviz.Digraph`` of one cell (Fig. 3 / Fig. 5 style), made by :func:`digraph`.

    Jupyter shows the returned object inline; :func:`cpnas.paths.save_graph`
    writes it as PNG and PDF. Needs the ``dot`` program (Debian: ``graphviz``).
    """
    g = digraph(title, graph_attr={"rankdir": "LR", "label": title, "labelloc": "t", "fontsize": "16"},
                node_attr={"style": "filled", "shape": "rect", "fontname": "Helvetica"},
                edge_attr={"fontname": "Helvetica", "fontsize": "11"})
    g.node("0", "c_{k-2}", fillcolor="darkseagreen2")
    g.node("1", "c_{k-1}", fillcolor="darkseagreen2")
    edges = list(edges)
    used = sorted({j for _, _, j in edges} | set(concat))
    for j in used:
        g.node(str(j), str(j - NUM_INPUTS), fillcolor="lightblue", shape="circle")
    for op, i, j in edges:
        g.edge(str(i), str(j), label=op, color=_OP_COLOURS.get(op, "black"),
               fontcolor=_OP_COLOURS.get(op, "black"), penwidth="2")
    g.node("out", "c_{k}", fillcolor="palegoldenrod")
    for j in concat:
        g.edge(str(j), "out", color="gray")
    return g


DARTS_V2 = Genotype.from_dict({
    "normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["sep_conv_3x3", 0], ["sep_conv_3x3", 1],
               ["sep_conv_3x3", 1], ["skip_connect", 0], ["skip_connect", 0], ["dil_conv_3x3", 2]],
    "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1], ["skip_connect", 2], ["max_pool_3x3", 1],
               ["max_pool_3x3", 0], ["skip_connect", 2], ["skip_connect", 2], ["max_pool_3x3", 1]],
}, source="DARTS_V2")
"""The cell DARTS published (Liu et al., ICLR 2019, second-order search, Fig. 4): a fixed, searched-elsewhere
architecture that the recipe sweep and the proxy check train, independent of our own searches."""
