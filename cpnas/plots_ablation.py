"""Figures of the ablation notebook (05): Fig. 6 (left and right), search cost, CP-loss ablation.

Every function takes the rows of :func:`cpnas.ablation.run_all` (one dict per
run) and returns a matplotlib figure; the means are over seeds, error bars are
one sample standard deviation, and every seed is drawn as a dot so that the
spread is visible when n is small.
"""

from __future__ import annotations

from typing import Any, Sequence

from cpnas.ablation import BETAS, LOSS_VARIANTS, STRATEGIES, summarize

_STRATEGY_LABELS = {"random": "Random", "pcdarts": "PC", "bnas": "BNAS†", "cpnas": "CP-NAS"}


def _scale_note(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return "no finished runs yet"
    r = rows[0]
    return (f"scale {r['scale']}, {r['dataset']}, {r['epochs']} epochs on {r['train_images']} images, "
            f"tested on {r['test_images']}; n = seeds")


def _dots(ax, xs, rows, key: str, value: Any, x: float) -> None:
    ys = [r["top1"] for r in rows if r[key] == value]
    ax.plot([x] * len(ys), ys, "o", color="black", markersize=3, alpha=0.6, zorder=3)


def fig6(rows: Sequence[dict[str, Any]]):
    """Fig. 6: top-1 vs β_P (left) and per search strategy (right), mean ± std over seeds."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    beta_rows = [r for r in rows if r["study"] == "beta"]
    s = summarize(beta_rows, "beta", by="beta_p")
    if not s.empty:
        s = s.sort_values("beta_p")
        left.errorbar(s["beta_p"], s["top1 mean"], yerr=s["top1 std"].fillna(0), fmt="s-", capsize=4,
                      color="tab:blue", label="mean ± std")
        for b in s["beta_p"]:
            _dots(left, None, beta_rows, "beta_p", b, b)
        for b, n in zip(s["beta_p"], s["n"]):
            left.annotate(f"n={n}", (b, left.get_ylim()[0]), fontsize=7, ha="center", va="bottom")
    left.set_xticks(list(BETAS), [f"{b:g}" for b in BETAS], fontsize=8)
    left.set_xlabel("β_P (Eq. 1; 0 = BNAS†)")
    left.set_ylabel("test accuracy (%)")
    left.set_title("(left) β_P", fontsize=10)
    left.grid(alpha=0.3)

    strat_rows = [r for r in rows if r["study"] == "strategy"]
    t = summarize(strat_rows, "strategy")
    order = [x for x in STRATEGIES if x in set(t["label"])] if not t.empty else []
    for i, name in enumerate(order):
        rec = t[t["label"] == name].iloc[0]
        right.bar(i, rec["top1 mean"], yerr=0 if rec["top1 std"] != rec["top1 std"] else rec["top1 std"],
                  capsize=4, color="tab:orange" if name == "cpnas" else "tab:gray", alpha=0.8)
        _dots(right, None, strat_rows, "label", name, i)
        right.annotate(f"n={rec['n']}", (i, 0), fontsize=7, ha="center", va="bottom")
    right.set_xticks(range(len(order)), [_STRATEGY_LABELS[x] for x in order])
    right.set_ylabel("test accuracy (%)")
    right.set_title("(right) search strategy, 1-bit space", fontsize=10)
    right.grid(alpha=0.3, axis="y")
    fig.suptitle("Fig. 6 reproduced — " + _scale_note(rows), fontsize=9)
    fig.tight_layout()
    return fig


def search_cost(rows: Sequence[dict[str, Any]]):
    """Measured search wall-clock per strategy (mean ± std over seeds), the "30 % faster" check."""
    import matplotlib.pyplot as plt

    t = summarize([r for r in rows if r["study"] == "strategy"], "strategy")
    fig, ax = plt.subplots(figsize=(5, 3.4))
    order = [x for x in STRATEGIES if not t.empty and x in set(t["label"])]
    for i, name in enumerate(order):
        secs = [r["search_wall_clock_s"] / 60 for r in rows if r["study"] == "strategy" and r["label"] == name]
        mean = sum(secs) / len(secs)
        ax.bar(i, mean, color="tab:orange" if name == "cpnas" else "tab:gray", alpha=0.8)
        ax.plot([i] * len(secs), secs, "o", color="black", markersize=3)
        ax.annotate(f"{mean:.1f}", (i, mean), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(order)), [_STRATEGY_LABELS[x] for x in order])
    ax.set_ylabel("search wall-clock (min)")
    ax.set_title("Search cost on this machine (Random: no training)", fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def loss_ablation(rows: Sequence[dict[str, Any]]):
    """Top-1 per CP-loss variant (same architecture, same budget), mean ± std over seeds."""
    import matplotlib.pyplot as plt

    loss_rows = [r for r in rows if r["study"] == "loss"]
    t = summarize(loss_rows, "loss")
    order = [x for x in LOSS_VARIANTS if not t.empty and x in set(t["label"])]
    fig, ax = plt.subplots(figsize=(7, 3.4))
    for i, name in enumerate(order):
        rec = t[t["label"] == name].iloc[0]
        ax.barh(i, rec["top1 mean"], xerr=0 if rec["top1 std"] != rec["top1 std"] else rec["top1 std"],
                capsize=4, color="tab:orange" if name.startswith("CP loss") else "tab:gray", alpha=0.8)
        ys = [r["top1"] for r in loss_rows if r["label"] == name]
        ax.plot(ys, [i] * len(ys), "o", color="black", markersize=3)
    ax.set_yticks(range(len(order)), order, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("test accuracy (%)")
    ax.set_title("CP-loss ablation — " + _scale_note(loss_rows), fontsize=9)
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig


def conv_ops_vs_beta(table):
    """Share of convolution ops in the found cells vs β_P (§3.4: larger β_P → fewer convolutions)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.4))
    if len(table):
        g = table.groupby("beta_p")["conv share"]
        m, s = g.mean(), g.std().fillna(0)
        ax.errorbar(m.index, m.values, yerr=s.values, fmt="s-", capsize=4)
        ax.plot(table["beta_p"], table["conv share"], "o", color="black", markersize=3, alpha=0.6)
    ax.set_xticks(list(BETAS), [f"{b:g}" for b in BETAS], fontsize=8)
    ax.set_xlabel("β_P")
    ax.set_ylabel("conv ops / kept edges (both cells)")
    ax.set_title("Convolutions in the found cells", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
