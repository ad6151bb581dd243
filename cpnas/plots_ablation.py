"""Seed-level figures of trained rows: every seed a dot beside its label's mean ± sample std.

:func:`seed_dots` takes rows with ``study``, ``label``, ``top1`` and the budget fields of
their ``metrics.json`` (those of :func:`cpnas.ablation.load_rows` and
:func:`cpnas.comparison_tables.table1_rows`), so that the spread is visible when n is small.
"""

from __future__ import annotations

from typing import Any, Sequence

from cpnas.stats import summarize


def _scale_note(rows: Sequence[dict[str, Any]], n_means: str = "seeds") -> str:
    if not rows:
        return "no finished runs yet"
    r = rows[0]
    epochs = f"{r['epochs']} epoch" + ("s" if r["epochs"] != 1 else "")
    return (f"budget {r.get('budget') or r['scale']}, {r['dataset']}, {epochs} on {r['train_images']} images, "
            f"tested on {r['test_images']}\nn = {n_means}")


def _std(rec) -> float:
    """The error bar of one summary row: its sample std, or 0 when one seed gave none (NaN)."""
    return 0.0 if rec["top1 std"] != rec["top1 std"] else rec["top1 std"]


def seed_dots(rows: Sequence[dict[str, Any]], study: str, *, order: Sequence[str] | None = None,
              title: str = "", n_means: str = "seeds"):
    """Top-1 per label of one study (e.g. Table 1's rows): every seed a dot, the mean ± sample std beside it.
    ``n_means`` says in the title what a row's n counts (the ablation's seeds are a search and a training each;
    Table 1 of the comparison: search seeds; the CP-loss study: training seeds of one cell)."""
    from matplotlib.figure import Figure

    mine = [r for r in rows if r["study"] == study]
    t = summarize(mine, study)
    labels = [x for x in (order or list(t["label"])) if not t.empty and x in set(t["label"])]
    fig = Figure(figsize=(7, 1.2 + 0.55 * max(1, len(labels))))
    ax = fig.subplots()
    notes = []
    for i, name in enumerate(labels):
        rec = t[t["label"] == name].iloc[0]
        ax.errorbar(rec["top1 mean"], i, xerr=_std(rec), fmt="s", capsize=4, color="tab:blue")
        ys = [r["top1"] for r in mine if r["label"] == name]
        ax.plot(ys, [i + 0.18] * len(ys), "o", color="black", markersize=3, alpha=0.7)
        # right of the error bar, on its own row (above it, the first row's label fell outside the axes)
        right = max([rec["top1 mean"] + (_std(rec) or 0.0), *ys])
        notes.append(ax.annotate(f"n={rec['n']}", (right, i), xytext=(6, 0), textcoords="offset points",
                                 fontsize=7, va="center", annotation_clip=False))
    ax.axvline(10.0, color="gray", lw=0.8, ls="--", label="chance")
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("test accuracy (%)")
    note = _scale_note(mine, n_means)
    ax.set_title(f"{title}\n{note}" if title else note, fontsize=9)  # one line each: none wider than the axes
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    room_on_the_right(ax, notes)
    return fig


def room_on_the_right(ax, texts, pad_px: float = 4.0) -> None:
    """Widen ``ax``'s x-axis to the right until every text of ``texts`` (anchored in data units, drawn at a
    fixed offset in points) ends inside the axes, ``pad_px`` pixels short of the frame.

    A text anchored at ``a`` and ``w`` pixels wide from there fits when ``hi − a ≥ (w + pad)·(hi − lo)/W``
    (``W``: the axes' width in pixels); so the smallest such ``hi`` is ``(a − k·lo)/(1 − k)``, ``k = (w + pad)/W``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if not texts:
        return
    fig = ax.figure
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)  # a renderer to measure the texts with
    renderer = fig.canvas.get_renderer()
    lo, hi = ax.get_xlim()
    box = ax.get_window_extent(renderer)
    new_hi = hi
    for text in texts:
        anchor = ax.transData.transform((text.xy[0], 0.0))[0]
        k = (text.get_window_extent(renderer).x1 - anchor + pad_px) / box.width
        if k < 1.0:
            new_hi = max(new_hi, (text.xy[0] - k * lo) / (1.0 - k))
    if new_hi > hi:
        ax.set_xlim(lo, new_hi)
