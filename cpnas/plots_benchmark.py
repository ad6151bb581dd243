"""Figures of the cell benchmark (:mod:`cpnas.cellbench`), the search-ranking study (:mod:`cpnas.ranking`) and the
strategy comparison (:mod:`cpnas.comparison`). Each returns a :class:`matplotlib.figure.Figure` (no pyplot state:
a notebook shows it once, as the cell's value)."""

from __future__ import annotations

from typing import Any


_SEARCH_COLOURS = ["C0", "C1", "C2", "C4", "C5", "C6", "C8", "C9"]
"""Matplotlib's cycle without the published cells' red (C3) and the uniform cells' grey (C7)."""


def _kind(source: str) -> str:
    """A benchmark cell's marker group: ``uniform``, ``published``, or the search it came from without its
    budget and seed (``searched: ranking/cpnas-beta2-cpu`` → ``cpnas-beta2``)."""
    if source == "uniform":
        return "uniform"
    if source.startswith("published"):
        return "published"
    return source.split("/", 1)[-1].rsplit("-", 1)[0]


def benchmark_distribution(df, *, title: str | None = None):
    """Top-1 of every benchmark architecture (the mean over its seeds, a bar over its seeds' range), sorted:
    the uniform draws grey, the published cells named, the searched cells coloured by the search that found
    them (one legend entry per search, with its count; names would overlap once there are many)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 3.6))
    ax = fig.subplots()
    if df.empty:
        ax.text(0.5, 0.5, "no finished benchmark training", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    g = df.groupby("architecture").agg(top1=("top1", "mean"), low=("top1", "min"), high=("top1", "max"),
                                       n=("top1", "size"), source=("source", "first")).sort_values("top1")
    g["kind"] = g["source"].map(_kind)
    searches = sorted(set(g["kind"]) - {"uniform", "published"})
    colours = {"uniform": "0.6", "published": "C3", **dict(zip(searches, _SEARCH_COLOURS * len(searches)))}
    shapes = {"uniform": "o", "published": "D"}
    marked: dict[str, Any] = {}
    for x, (name, r) in enumerate(g.iterrows()):
        colour = colours[r.kind]
        ax.plot([x, x], [r.low, r.high], color=colour, lw=1)
        h = ax.scatter([x], [r.top1], color=colour, s=18 if r.kind == "uniform" else 34, zorder=3,
                       marker=shapes.get(r.kind, "s"), edgecolors="none")
        marked.setdefault(r.kind, h)
        if r.kind == "published":
            ax.annotate(name, (x, r.low), xytext=(0, -10), textcoords="offset points", ha="center", va="top",
                        fontsize=7)
    counts = g["kind"].value_counts()
    order = ["uniform", "published", *searches]
    shown = [k for k in order if k in marked]
    ax.legend([marked[k] for k in shown], [f"{k if k in shapes else 'found by ' + k} ({counts[k]})" for k in shown],
              fontsize=7, loc="upper left", ncol=2 if len(shown) > 4 else 1)
    ax.set_xticks([])
    lo, hi = g["low"].min(), g["high"].max()
    ax.set_ylim(lo - 0.12 * (hi - lo), hi + 0.35 * (hi - lo))  # room for the names below and the legend above
    ax.set_xlabel(f"{len(g)} architectures, sorted by top-1 (bars: range over seeds)")
    ax.set_ylabel("CIFAR-10 top-1 (%)")
    ax.set_title(title or "1-bit cell benchmark")
    fig.tight_layout()
    return fig


def ranking_vs_minutes(df, *, title: str | None = None):
    """Kendall τ-b of each strategy's scores against the benchmark, against the search's minutes (95 % CI bars)."""
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    fig = Figure(figsize=(8, 3.8))
    ax = fig.subplots()
    ax.axhline(0, color="0.7", lw=0.8)
    if df.empty:
        ax.text(0.5, 0.5, "no finished ranking search", ha="center", va="center", transform=ax.transAxes)
        return fig
    markers = dict(zip(sorted(df["strategy"].unique()), "osD^v<>"))
    colors = matplotlib.colormaps["tab20"].colors
    for k, ((strategy, score), grp) in enumerate(df.groupby(["strategy", "score"], sort=False)):
        grp = grp.sort_values("search_minutes")
        yerr = [grp["tau"] - grp["ci_low"], grp["ci_high"] - grp["tau"]]
        ax.errorbar(grp["search_minutes"] * (1 + 0.015 * k), grp["tau"], yerr=yerr, marker=markers[strategy], ms=4,
                    lw=1, capsize=2, color=colors[k % len(colors)], label=f"{strategy}: {score}")
    ax.set_xscale("log")
    lo, hi = df["search_minutes"].min(), df["search_minutes"].max()
    ax.set_xticks([t for t in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000) if lo / 2 <= t <= hi * 2])
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("search wall-clock (min, one thread)")
    ax.set_ylabel("Kendall τ-b vs trained top-1")
    ax.set_title(title or "Does the search rank cells?")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def strategy_dots(values: dict[Any, Any], *, labels: dict[Any, str] | None = None, title: str | None = None,
                  reference: Any = "random"):
    """Benchmark top-1 of the cells each arm found (one dot per search seed) with the arm's mean ± sample std,
    and the ``reference`` arm's spread shaded (random sampling: the benchmark's uniform cells). ``values`` maps
    an arm (or a β_P) to its top-1s (:func:`cpnas.comparison.arm_values`, :func:`cpnas.comparison.beta_values`)."""
    import statistics

    from matplotlib.figure import Figure

    from cpnas.plots_ablation import room_on_the_right

    arms = [k for k, v in values.items() if len(v)]
    fig = Figure(figsize=(7, 1.4 + 0.5 * max(1, len(arms))))
    ax = fig.subplots()
    if not arms:
        ax.text(0.5, 0.5, "no found cell is trained yet", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    ref = list(values.get(reference, ()))
    shaded = ""
    if len(ref) > 1:
        m, s = statistics.fmean(ref), statistics.stdev(ref)
        ax.axvspan(m - s, m + s, color="0.9", zorder=0)
        shaded = f"\nshaded: {(labels or {}).get(reference, reference)}, mean ± std"
    notes = []
    for i, arm in enumerate(arms):
        ys = list(values[arm])
        mean = statistics.fmean(ys)
        std = statistics.stdev(ys) if len(ys) > 1 else 0.0
        ax.errorbar(mean, i, xerr=std, fmt="s", capsize=4, color="tab:blue")
        ax.plot(ys, [i + 0.18] * len(ys), "o", color="black", markersize=3, alpha=0.7)
        notes.append(ax.annotate(f"n={len(ys)}", (max(mean + std, *ys), i), xytext=(6, 0), textcoords="offset points",
                                 fontsize=7, va="center", annotation_clip=False))
    ax.set_yticks(range(len(arms)), [(labels or {}).get(a, str(a)) for a in arms], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("CIFAR-10 top-1 of the found cell (%), `cpu` training budget, 10,000 test images")
    ax.set_title((title or "The strategy comparison") + shaded, fontsize=9)  # a legend would cover dots
    ax.grid(alpha=0.3, axis="x")
    ax.margins(x=0.08)
    fig.tight_layout()
    room_on_the_right(ax, notes)  # the n= labels end inside the frame
    return fig
