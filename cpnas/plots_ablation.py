"""Figures of the ablation notebook (05): Fig. 6 (left and right), search cost, CP-loss ablation.

Every function takes the rows of :func:`cpnas.ablation.load_rows` (one dict per
run) and returns a matplotlib figure; the means are over seeds, error bars are
one sample standard deviation, and every seed is drawn as a dot so that the
spread is visible when n is small.
"""

from __future__ import annotations

from typing import Any, Sequence

from cpnas.ablation import BETAS, LOSS_STUDIES, LOSS_VARIANTS, PAPER_STRATEGY, STRATEGIES
from cpnas.stats import summarize


def _label(strategy: str) -> str:
    """A strategy's plot label (its ``label`` trait; the name itself for an unknown one)."""
    from cpnas.errors import CpnasError
    from cpnas.strategy_base import label_of

    try:
        return label_of(strategy)
    except CpnasError:
        return strategy


def _scale_note(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return "no finished runs yet"
    r = rows[0]
    epochs = f"{r['epochs']} epoch" + ("s" if r["epochs"] != 1 else "")
    return (f"budget {r.get('budget') or r['scale']}, {r['dataset']}, {epochs} on {r['train_images']} images, "
            f"tested on {r['test_images']}; n = seeds")


def _std(rec) -> float:
    """The error bar of one summary row: its sample std, or 0 when one seed gave none (NaN)."""
    return 0.0 if rec["top1 std"] != rec["top1 std"] else rec["top1 std"]


def _dots(ax, rows, key: str, value: Any, x: float) -> None:
    ys = [r["top1"] for r in rows if r[key] == value]
    ax.plot([x] * len(ys), ys, "o", color="black", markersize=3, alpha=0.6, zorder=3)


def fig6(rows: Sequence[dict[str, Any]]):
    """Fig. 6: top-1 vs β_P (left) and per search strategy (right), mean ± std over seeds."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.8))
    left, right = fig.subplots(1, 2)
    beta_rows = [r for r in rows if r["study"] == "beta"]
    s = summarize(beta_rows, "beta", by="beta_p")
    # categorical x (the β_P values are not evenly spaced: 0.33 and 0.5 would overlap)
    betas = sorted(set(BETAS) | (set(s["beta_p"]) if not s.empty else set()))
    pos = {b: i for i, b in enumerate(betas)}
    if not s.empty:
        s = s.sort_values("beta_p")
        xs = [pos[b] for b in s["beta_p"]]
        left.errorbar(xs, s["top1 mean"], yerr=s["top1 std"].fillna(0), fmt="s-", capsize=4,
                      color="tab:blue", label="mean ± std")
        for b in s["beta_p"]:
            _dots(left, beta_rows, "beta_p", b, pos[b])
        for b, n in zip(s["beta_p"], s["n"]):  # at the foot of the axes, whatever the y-limits become
            left.annotate(f"n={n}", (pos[b], 0.01), xycoords=left.get_xaxis_transform(), fontsize=7,
                          ha="center", va="bottom")
    gap_rows = [r for r in rows if r["study"] == "beta-gap"]
    g = summarize(gap_rows, "beta-gap", by="beta_p")
    if not g.empty:  # the gap_penalty reading of Eq. 1, beside the printed one (offset to the right)
        g = g.sort_values("beta_p")
        xs = [pos.get(b, 0) + 0.15 for b in g["beta_p"]]
        left.errorbar(xs, g["top1 mean"], yerr=g["top1 std"].fillna(0), fmt="^", capsize=3, color="tab:red",
                      label="gap_penalty reading")
        for b, x in zip(g["beta_p"], xs):
            _dots(left, gap_rows, "beta_p", b, x)
    left.set_xticks(range(len(betas)), [f"{b:g}" for b in betas], fontsize=8)
    left.axhline(10.0, color="gray", lw=0.8, ls="--", label="chance (10 classes)")
    left.legend(fontsize=7, loc="best")
    left.set_xlabel("β_P (Eq. 1; 0 = BNAS†)")
    left.set_ylabel("test accuracy (%)")
    left.set_title("(left) β_P", fontsize=10)
    left.grid(alpha=0.3)

    strat_rows = [r for r in rows if r["study"] == "strategy"]
    t = summarize(strat_rows, "strategy")
    order = [x for x in STRATEGIES if x in set(t["label"])] if not t.empty else []
    for i, name in enumerate(order):
        rec = t[t["label"] == name].iloc[0]
        right.bar(i, rec["top1 mean"], yerr=_std(rec),
                  capsize=4, color="tab:orange" if name == PAPER_STRATEGY else "tab:gray", alpha=0.8)
        _dots(right, strat_rows, "label", name, i)
        right.annotate(f"n={rec['n']}", (i, 0), fontsize=7, ha="center", va="bottom")
    right.axhline(10.0, color="gray", lw=0.8, ls="--")
    right.set_xticks(range(len(order)), [_label(x) for x in order])
    right.set_ylabel("test accuracy (%)")
    right.set_title("(right) search strategy, 1-bit space", fontsize=10)
    right.grid(alpha=0.3, axis="y")
    fig.suptitle("Fig. 6 reproduced — " + _scale_note(rows), fontsize=9)
    fig.tight_layout()
    return fig


def seed_dots(rows: Sequence[dict[str, Any]], study: str, *, order: Sequence[str] | None = None,
              title: str = ""):
    """Top-1 per label of one study (e.g. Table 1's rows): every seed a dot, the mean ± sample std beside it."""
    from matplotlib.figure import Figure

    mine = [r for r in rows if r["study"] == study]
    t = summarize(mine, study)
    labels = [x for x in (order or list(t["label"])) if not t.empty and x in set(t["label"])]
    fig = Figure(figsize=(7, 1.2 + 0.55 * max(1, len(labels))))
    ax = fig.subplots()
    for i, name in enumerate(labels):
        rec = t[t["label"] == name].iloc[0]
        ax.errorbar(rec["top1 mean"], i, xerr=_std(rec), fmt="s", capsize=4, color="tab:blue")
        ys = [r["top1"] for r in mine if r["label"] == name]
        ax.plot(ys, [i + 0.18] * len(ys), "o", color="black", markersize=3, alpha=0.7)
        # right of the error bar, on its own row (above it, the first row's label fell outside the axes)
        right = max([rec["top1 mean"] + (_std(rec) or 0.0), *ys])
        ax.annotate(f"n={rec['n']}", (right, i), xytext=(6, 0), textcoords="offset points", fontsize=7,
                    va="center", annotation_clip=False)
    ax.axvline(10.0, color="gray", lw=0.8, ls="--", label="chance")
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("test accuracy (%)")
    ax.set_title(f"{title} — {_scale_note(mine)}" if title else _scale_note(mine), fontsize=9)
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig


def search_cost(rows: Sequence[dict[str, Any]]):
    """Measured search wall-clock per strategy (mean ± std over seeds), the "30 % faster" check."""
    from matplotlib.figure import Figure

    t = summarize([r for r in rows if r["study"] == "strategy"], "strategy")
    fig = Figure(figsize=(5, 3.4))
    ax = fig.subplots()
    order = [x for x in STRATEGIES if not t.empty and x in set(t["label"])]
    for i, name in enumerate(order):
        secs = [r["search_wall_clock_s"] / 60 for r in rows if r["study"] == "strategy" and r["label"] == name]
        mean = sum(secs) / len(secs)
        ax.bar(i, mean, color="tab:orange" if name == PAPER_STRATEGY else "tab:gray", alpha=0.8)
        ax.plot([i] * len(secs), secs, "o", color="black", markersize=3)
        ax.annotate(f"{mean:.1f}", (i, mean), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(order)), [_label(x) for x in order])
    ax.set_ylabel("search wall-clock (min)")
    ax.set_title("Search cost on this machine (Random: no training)", fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def loss_ablation(rows: Sequence[dict[str, Any]]):
    """Top-1 per CP-loss variant (same cell, same budget), mean ± std over seeds: one panel per cell studied."""
    from matplotlib.figure import Figure

    studies = [st for st in LOSS_STUDIES if any(r["study"] == st for r in rows)] or ["loss"]
    fig = Figure(figsize=(7, 2.2 + 1.6 * len(studies)))
    axes = fig.subplots(len(studies), 1, sharex=True, squeeze=False)[:, 0]
    for ax, study in zip(axes, studies):
        loss_rows = [r for r in rows if r["study"] == study]
        t = summarize(loss_rows, study)
        order = [x for x in LOSS_VARIANTS if not t.empty and x in set(t["label"])]
        for i, name in enumerate(order):
            rec = t[t["label"] == name].iloc[0]
            ax.barh(i, rec["top1 mean"], xerr=_std(rec),
                    capsize=4, color="tab:orange" if name.startswith("CP loss") else "tab:gray", alpha=0.8)
            ys = [r["top1"] for r in loss_rows if r["label"] == name]
            ax.plot(ys, [i] * len(ys), "o", color="black", markersize=3)
        ax.axvline(10.0, color="gray", lw=0.8, ls="--")
        ax.set_yticks(range(len(order)), order, fontsize=8)
        ax.invert_yaxis()
        ax.set_title(LOSS_STUDIES[study], fontsize=9)
        ax.grid(alpha=0.3, axis="x")
    axes[-1].set_xlabel("test accuracy (%)")
    fig.suptitle("CP-loss ablation — " + _scale_note([r for r in rows if r["study"] in LOSS_STUDIES]), fontsize=9)
    fig.tight_layout()
    return fig


def conv_ops_vs_beta(table):
    """Share of convolution ops in the found cells vs β_P (§3.4: larger β_P → fewer convolutions)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.4))
    ax = fig.subplots()
    if len(table):
        g = table.groupby("beta_p")["conv share"]
        m, s = g.mean(), g.std().fillna(0)
        pos = {b: i for i, b in enumerate(m.index)}
        ax.errorbar([pos[b] for b in m.index], m.values, yerr=s.values, fmt="s-", capsize=4)
        ax.plot([pos[b] for b in table["beta_p"]], table["conv share"], "o", color="black", markersize=3, alpha=0.6)
        ax.set_xticks(range(len(m.index)), [f"{b:g}" for b in m.index], fontsize=8)
    ax.set_xlabel("β_P")
    ax.set_ylabel("conv ops / kept edges (both cells)")
    ax.set_title("Convolutions in the found cells", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
