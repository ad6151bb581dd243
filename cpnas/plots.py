"""Figures and small tables of the method (§2.2, §2.4, Fig. 3, Fig. 4), as pure functions.

Every function builds its result from the library's own objects — the cell DAG of
:func:`cpnas.genotype.cell_edges`, the modules built by :data:`cpnas.ops.OPS`, the
autograd of :func:`cpnas.binary.sign` — and returns a ``graphviz.Digraph``, a
matplotlib ``Figure`` or a pandas ``DataFrame``. Nothing here writes to disk:
:func:`cpnas.paths.save_figure`, :func:`cpnas.paths.save_graph` and
:func:`cpnas.paths.save_table` do. Used by ``notebooks/01_ops_sanity.ipynb``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch
import torch.fx
from torch import nn

from cpnas.binary import BINARY, BinaryConv2d, Precision, binarize_weight, scaling_factor, sign
from cpnas.genotype import NUM_INPUTS, cell_edges, digraph
from cpnas.ops import PRIMITIVES, Zero, build_op

# Fig. 4 shows the *structure* of each op, which does not depend on the width; any even
# width builds the same layers (FactorizedReduce needs an even one). Channels are shown
# symbolically (C, C/2), never as this number.
_DRAW_CHANNELS = 4


# --- Fig. 3: the cell DAG -------------------------------------------------------------

def fig3_cell_dag(nodes: int = 4):
    """Fig. 3: the cell of the search space as a ``graphviz.Digraph``.

    Two input nodes (the outputs c_{k-2}, c_{k-1} of the previous two cells, §2.2),
    ``nodes`` intermediate nodes, one blue edge (i, j) for every i < j — each edge
    holds the K candidate ops O^(i,j) — and the cell output c_k concatenating the
    intermediate nodes. With ``nodes=4`` there are 14 edges, as in the figure.
    """
    edges = cell_edges(nodes)
    g = digraph(
        "fig3_cell_dag",
        graph_attr={"rankdir": "LR", "labelloc": "t", "fontsize": "16", "fontname": "Helvetica",
                    "label": f"Fig. 3: one cell — {NUM_INPUTS} input nodes, {nodes} intermediate "
                             f"nodes, {len(edges)} edges (each holds the candidate ops O^(i,j))"},
        node_attr={"style": "filled", "fontname": "Helvetica"},
        edge_attr={"fontname": "Helvetica", "fontsize": "10"})
    # §2.2 numbers the inputs N_{-1}, N_0 and the intermediate nodes N_1 … N_M.
    g.node("0", "<N<SUB>−1</SUB> = c<SUB>k−2</SUB>>", shape="rect", fillcolor="darkseagreen2")
    g.node("1", "<N<SUB>0</SUB> = c<SUB>k−1</SUB>>", shape="rect", fillcolor="darkseagreen2")
    for j in range(NUM_INPUTS, NUM_INPUTS + nodes):
        g.node(str(j), f"<N<SUB>{j - NUM_INPUTS + 1}</SUB>>", shape="circle", fillcolor="lightblue")
    for i, j in edges:
        g.edge(str(i), str(j), color="#1f5fbf", penwidth="1.6")
    g.node("out", "<c<SUB>k</SUB> (concat)>", shape="rect", fillcolor="palegoldenrod")
    for j in range(NUM_INPUTS, NUM_INPUTS + nodes):
        g.edge(str(j), "out", color="gray", style="dashed")
    return g


# --- Fig. 4: the operations, read from the modules -----------------------------------

class _OpTracer(torch.fx.Tracer):
    """Keep convs and the zero op as single nodes (sign/STE and the CPU dilated-conv path are not traceable)."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, (nn.Conv2d, Zero)) or super().is_leaf_module(m, qualname)


def _channels(n: int, C: int) -> str:
    return "C" if n == C else f"C/{C // n}" if n and C % n == 0 else f"{n / C:g}C"


def describe_layer(module: nn.Module, C: int = _DRAW_CHANNELS) -> str:
    """One line describing a layer as built (kernel, dilation, stride, precision), channels as C."""
    if isinstance(module, nn.Conv2d):
        k, d, s = module.kernel_size[0], module.dilation[0], module.stride[0]
        kind = "1-bit conv" if isinstance(module, BinaryConv2d) else "32-bit conv"
        depthwise = module.groups > 1 and module.groups == module.in_channels
        parts = [f"{kind} {k}×{k}", "depthwise" if depthwise else
                 f"{_channels(module.in_channels, C)}→{_channels(module.out_channels, C)}"]
        if d > 1:
            parts.append(f"dilation {d}")
        if s > 1:
            parts.append(f"stride {s}")
        if isinstance(module, BinaryConv2d) and not module.binarize_input:
            parts.append("real input")
        return ", ".join(parts)
    if isinstance(module, nn.BatchNorm2d):
        return "BN" if module.affine else "BN (no affine)"
    if isinstance(module, (nn.AvgPool2d, nn.MaxPool2d)):
        kind = "avg" if isinstance(module, nn.AvgPool2d) else "max"
        s = module.stride if isinstance(module.stride, int) else module.stride[0]
        return f"{kind} pool {module.kernel_size}×{module.kernel_size}" + (f", stride {s}" if s > 1 else "")
    if isinstance(module, nn.Identity):
        return "identity"
    if isinstance(module, Zero):
        return "zero" + (f", stride {module.stride}" if module.stride > 1 else "")
    return type(module).__name__


def _format_index(idx) -> str:
    def one(s):
        if isinstance(s, slice):
            return f"{'' if s.start is None else s.start}:{'' if s.stop is None else s.stop}" + \
                   ("" if s.step is None else f":{s.step}")
        return repr(s)
    return "x[" + ", ".join(one(s) for s in (idx if isinstance(idx, tuple) else (idx,))) + "]"


def _describe_node(node: torch.fx.Node, op: nn.Module, C: int) -> str:
    if node.op == "call_module":
        return describe_layer(op.get_submodule(node.target), C)
    name = getattr(node.target, "__name__", str(node.target))
    if name == "getitem":
        return _format_index(node.args[1])
    if name == "pad":
        return f"pad {tuple(node.args[1])}"
    if name == "cat":
        return "concat (channels)"
    if name == "mul":
        return f"× {node.args[1]}"
    return name


def _trace(name: str, stride: int, precision: Precision, C: int) -> tuple[nn.Module, torch.fx.Graph]:
    # Wrapped so that an op which is itself a leaf (identity, zero) still appears as a node.
    op = nn.Sequential(build_op(name, C, stride, precision))
    return op, _OpTracer().trace(op)


def op_layers(name: str, stride: int = 1, precision: Precision = BINARY,
              C: int = _DRAW_CHANNELS) -> list[str]:
    """The layers of op ``name`` in execution order, as built by :data:`cpnas.ops.OPS`."""
    op, graph = _trace(name, stride, precision, C)
    return [_describe_node(n, op, C) for n in graph.nodes if n.op not in ("placeholder", "output")]


def fig4_ops(precision: Precision = BINARY, stride: int = 1, ops: Sequence[str] = PRIMITIVES):
    """Fig. 4: the candidate operations of an edge, each drawn as its layer graph.

    The graph is traced (``torch.fx``) from the modules that :data:`cpnas.ops.OPS`
    builds in ``precision``, so it shows exactly what runs: e.g. a binary
    ``sep_conv_3x3`` is two ``1-bit depthwise 3×3 → 1-bit 1×1 → BN`` blocks and
    contains no ReLU (§2.2). ``stride=2`` shows the reduction-cell versions.
    """
    C = _DRAW_CHANNELS
    g = digraph(
        "fig4_ops",
        graph_attr={"rankdir": "LR", "labelloc": "t", "fontsize": "16", "fontname": "Helvetica",
                    "label": f"Fig. 4: the {len(ops)} operations of an edge ({precision.name} precision, "
                             f"stride {stride}; C = channels)", "nodesep": "0.15", "ranksep": "0.25"},
        node_attr={"shape": "box", "style": "rounded,filled", "fillcolor": "white", "fontname": "Helvetica",
                   "fontsize": "11"},
        edge_attr={"arrowsize": "0.6"})
    for name in reversed(ops):  # graphviz stacks LR clusters bottom-up: list them in reverse
        op, graph = _trace(name, stride, precision, C)
        with g.subgraph(name=f"cluster_{name}") as sub:
            sub.attr(label=name, style="rounded", color="gray60", fontname="Helvetica-Bold")
            for node in graph.nodes:
                key = f"{name}/{node.name}"
                if node.op == "placeholder":
                    sub.node(key, "in", shape="circle", fillcolor="darkseagreen2")
                elif node.op == "output":
                    sub.node(key, "out", shape="circle", fillcolor="palegoldenrod")
                else:
                    label = _describe_node(node, op, C)
                    fill = "#fde0c5" if label.startswith("1-bit") else "#dbe8f6" if "conv" in label else "white"
                    sub.node(key, label, fillcolor=fill)
                for src in node.all_input_nodes:
                    sub.edge(f"{name}/{src.name}", key)
    return g


# --- §2.4: sign and its straight-through gradient --------------------------------------

def _sign_and_grad(x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    x = x.detach().clone().requires_grad_(True)
    y = sign(x)
    (grad,) = torch.autograd.grad(y.sum(), x)
    return y.detach().numpy(), grad.numpy()


def ste_plot(x_min: float = -2.0, x_max: float = 2.0, points: int = 801):
    """sign(x) and its clipped straight-through gradient 1_{|x| ≤ 1} (§2.4), as a Figure.

    Both curves are computed by :func:`cpnas.binary.sign` and autograd, not drawn
    from the formula.
    """
    from matplotlib.figure import Figure

    x = torch.linspace(x_min, x_max, points, dtype=torch.float64)
    y, grad = _sign_and_grad(x)
    fig = Figure(figsize=(8, 3), layout="constrained")
    ax_f, ax_g = fig.subplots(1, 2, sharex=True)
    ax_f.step(x.numpy(), y, where="post", color="C0")
    y0, _ = _sign_and_grad(torch.zeros(1, dtype=torch.float64))
    ax_f.plot([0.0], y0, "o", color="C0")  # the value at 0, from the library
    ax_f.set(title="forward: sign(x) ∈ {−1, +1}, sign(0) = +1", xlabel="x", ylim=(-1.3, 1.3))
    ax_g.step(x.numpy(), grad, where="mid", color="C3")
    ax_g.set(title="backward (autograd): STE, 1 if |x| ≤ 1", xlabel="x", ylim=(-0.2, 1.2))
    for ax in (ax_f, ax_g):
        ax.axhline(0, color="gray", lw=0.5)
        ax.axvline(0, color="gray", lw=0.5)
        ax.grid(alpha=0.3)
    fig.suptitle("§2.4 binarization with the clipped straight-through estimator")
    return fig


def sign_table(xs: Sequence[float] = (-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0)) -> pd.DataFrame:
    """sign(x) and its STE gradient at a few points, including 0 and the clip boundaries ±1."""
    y, grad = _sign_and_grad(torch.tensor(xs, dtype=torch.float64))
    return pd.DataFrame({"x": list(xs), "sign(x)": y.astype(int), "d sign / dx (STE)": grad})


def binarization_check(c_in: int = 4, c_out: int = 6, kernel_size: int = 3, seed: int = 0) -> pd.DataFrame:
    """Per output channel of a :class:`BinaryConv2d`: its reconstructed weight is exactly ±α_c (§2.4).

    The latent weights are drawn from a seeded normal. Columns: α_c = mean |W_c|
    (rounded for display), the distinct values of |Ŵ_c| (must be the single value
    α_c), counts of +α_c and −α_c, whether sign(Ŵ) = sign(W) (0 → +), and whether
    α_c minimises ‖W_c − a·sign(W_c)‖² (checked against a = 0.99 α_c and 1.01 α_c),
    the property that makes mean |W| the XNOR-Net scale.
    """
    conv = BinaryConv2d(c_in, c_out, kernel_size, bias=False)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen))
        w = conv.weight.double()
        w_hat = binarize_weight(w)
        alpha = scaling_factor(w).flatten()
    rows = []
    for c in range(c_out):
        s = torch.where(w[c] >= 0, 1.0, -1.0).double()
        values = torch.unique(w_hat[c].abs())
        err = [float(((w[c] - a * s) ** 2).sum()) for a in (alpha[c] * 0.99, alpha[c], alpha[c] * 1.01)]
        rows.append({
            "channel": c,
            "α = mean|W|": round(float(alpha[c]), 6),
            "distinct |Ŵ|": len(values),
            "|Ŵ| == α": bool(torch.equal(values, alpha[c].reshape(1))),
            "n(+α)": int((w_hat[c] > 0).sum()),
            "n(−α)": int((w_hat[c] < 0).sum()),
            "sign(Ŵ) == sign(W)": bool(torch.equal(torch.sign(w_hat[c]), s)),
            "α minimises error": err[1] <= min(err[0], err[2]),
        })
    return pd.DataFrame(rows)


# --- every op × stride: shapes, parameters, binary convs ------------------------------

def ops_shape_table(C: int, H: int, precision: Precision, strides: Sequence[int] = (1, 2),
                    batch: int = 2) -> pd.DataFrame:
    """Build and run every op of :data:`cpnas.ops.OPS` on a ``batch × C × H × H`` input.

    One row per op × stride: output shape (C×H×W), number of parameters, how many
    of them are 1-bit conv weights, and the numbers of binary and real convolutions
    (§2.2: in the Child every conv is binary; in the Parent none is).
    """
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, C, H, H, generator=gen)
    rows = []
    for stride in strides:
        for name in PRIMITIVES:
            op = build_op(name, C, stride, precision).eval()
            with torch.no_grad():
                y = op(x)
            convs = [m for m in op.modules() if isinstance(m, nn.Conv2d)]
            binary = [m for m in convs if isinstance(m, BinaryConv2d)]
            rows.append({
                "op": name, "stride": stride,
                "input": "×".join(map(str, x.shape[1:])), "output": "×".join(map(str, y.shape[1:])),
                "params": sum(p.numel() for p in op.parameters()),
                "1-bit params": sum(m.weight.numel() for m in binary),
                "binary convs": len(binary), "real convs": len(convs) - len(binary),
                "finite": bool(torch.isfinite(y).all()),
            })
    return pd.DataFrame(rows)


# --- search (notebook 02, Fig. 5) --------------------------------------------

def indicator_heatmap(indicator: dict, kind: str = "normal"):
    """Heatmap of the indicator e(o) (Eq. 2) of every op on every edge, one panel per round.

    ``indicator`` is the content of a search's ``indicator.json``; removed ops are
    shown blank from the round after their removal, the op removed in a round is
    outlined in red.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle
    import numpy as np

    from cpnas.ops import PRIMITIVES

    rounds = indicator["rounds"]
    edges = indicator["edges"]
    fig = Figure(figsize=(2.1 * len(rounds) + 1.5, 4.6))
    axes = fig.subplots(1, len(rounds), sharey=True, squeeze=False)
    vmax = max(max(v for d in r["indicator"][kind] for v in d.values()) for r in rounds)
    for ax, r in zip(axes[0], rounds):
        grid = np.full((len(edges), len(PRIMITIVES)), np.nan)
        for e, d in enumerate(r["indicator"][kind]):
            for op, v in d.items():
                grid[e, PRIMITIVES.index(op)] = v
        im = ax.imshow(grid, cmap="viridis", vmin=0, vmax=vmax, aspect="auto")
        for e, op in enumerate(r["removed"][kind]):
            ax.add_patch(Rectangle((PRIMITIVES.index(op) - 0.5, e - 0.5), 1, 1, fill=False,
                                       edgecolor="red", linewidth=1.5))
        k = len(r["indicator"][kind][0])
        ax.set_title(f"round {r['round'] + 1} (K={k})", fontsize=9)
        ax.set_xticks(range(len(PRIMITIVES)), PRIMITIVES, rotation=90, fontsize=7)
    axes[0][0].set_yticks(range(len(edges)), [f"{i}→{j}" for i, j in edges], fontsize=7)
    axes[0][0].set_ylabel(f"{kind} cell edge (i→j)")
    fig.colorbar(im, ax=axes[0].tolist(), fraction=0.02, label="e(o), Eq. 2")
    fig.suptitle(f"Indicator per edge and round, {kind} cell (red: op removed)", fontsize=11)
    return fig


def search_curves(history: list[dict]):
    """A_C, A_P and z over the search epochs (Eq. 1), with the round boundaries."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.6))
    ax = fig.subplots()
    ep = [h["epoch"] + 1 for h in history]
    ax.plot(ep, [h["A_C"] for h in history], ".-", label="A_C (Child, 1-bit)")
    if any(h.get("A_P") is not None for h in history):
        ax.plot(ep, [h["A_P"] for h in history], ".-", label="A_P (Parent, 32-bit)")
    ax.plot(ep, [h["z"] for h in history], ":", color="gray", label="z (Eq. 1)")
    for h in history:
        if "removed" in h:
            ax.axvline(h["epoch"] + 1.5, color="lightgray", lw=0.8)
    ax.set_xlabel("search epoch")
    ax.set_ylabel("accuracy on the score split")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def snr_table(indicator: dict) -> pd.DataFrame:
    """Per round of Alg. 1: spread of z over the draws, the score split's noise, and their ratio ``snr``."""
    cols = ["round", "draws", "mean_A_C", "mean_A_P", "z_std", "z_se", "snr", "score_images"]
    rows = [{c: r.get(c) for c in cols} for r in indicator.get("rounds", [])]
    return pd.DataFrame(rows, columns=cols).round(4)


def snr_plot(indicator: dict):
    """Bars of ``snr`` per round, with the lines snr = 1 (draws differ as much as re-scoring noise) and 2."""
    from matplotlib.figure import Figure

    rounds = [r for r in indicator.get("rounds", []) if r.get("snr") is not None]
    fig = Figure(figsize=(6, 3))
    ax = fig.subplots()
    ax.bar([r["round"] for r in rounds], [r["snr"] for r in rounds], color="C0")
    ax.axhline(1, color="gray", lw=0.8, ls=":", label="snr = 1: noise only")
    ax.axhline(2, color="C3", lw=0.8, ls="--", label="snr = 2 (the bar for the median)")
    med = indicator.get("median_snr")
    ax.set_title(f"spread of z over draws / score-split SE (median {med:.2f})" if med is not None
                 else "spread of z over draws / score-split SE", fontsize=10)
    ax.set_xlabel("round (K ops left on every edge: 8 − round)")
    ax.set_ylabel("snr")
    ax.legend(fontsize=8)
    return fig


def removal_table(indicator: dict, kind: str = "normal"):
    """DataFrame: for every edge (rows) the op removed in each round (columns), then the survivor."""
    import pandas as pd

    rows = []
    for e, (i, j) in enumerate(indicator["edges"]):
        row = {"edge": f"{i}→{j}"}
        for r in indicator["rounds"]:
            row[f"round {r['round'] + 1}"] = r["removed"][kind][e]
        last_round = indicator["rounds"][-1]
        row["kept"] = next(op for op in last_round["indicator"][kind][e] if op != last_round["removed"][kind][e])
        rows.append(row)
    return pd.DataFrame(rows)


def fig5(genotype):
    """Fig. 5: the normal (a) and reduction (b) cells of a genotype, as two graphviz graphs."""
    return genotype.draw("normal", title="(a) normal cell"), genotype.draw("reduce", title="(b) reduction cell")


def op_counts(genotype):
    """DataFrame: how many edges of each cell use each op (the paper notes CP-NAS prefers pooling, §3.2)."""
    rows = []
    for kind in ("normal", "reduce"):
        edges, _ = genotype.cell(kind)
        row = {"cell": kind}
        for op in PRIMITIVES:
            if op != "none":
                row[op] = sum(1 for e in edges if e[0] == op)
        row["edges"] = len(edges)
        rows.append(row)
    return pd.DataFrame(rows)
