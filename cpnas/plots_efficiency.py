"""Table 3 as a chart: memory (Mbit) and FLOPs (M) of each network, paper vs ours."""

from __future__ import annotations

import numpy as np

_COLOURS = {"paper": "#9e9e9e", "ours": "#d95f02"}


def table3_chart(df, *, title: str = "Table 3: memory and FLOPs on CIFAR-10 (log scale)"):
    """Grouped bars of ``memory (Mbit)`` and ``FLOPs (M)`` from :func:`cpnas.tables.table3`.

    One group per paper row (``compare with``); inside a group, the paper's
    reported value (grey) and each of our measured rows (orange; a second reading
    in the same group, e.g. 1-bit WRN-22 with real shortcuts, is hatched). Log scale, since WRN-22 is ~30× the 1-bit
    networks. Returns the ``matplotlib.figure.Figure``; nothing is shown or saved.
    """
    from matplotlib.figure import Figure

    groups = list(dict.fromkeys(df["compare with"]))
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    axes = fig.subplots(1, 2)
    hatches = ["", "//", "xx", ".."]
    for ax, col, label in ((axes[0], "memory (Mbit)", "memory (Mbit)"), (axes[1], "FLOPs (M)", "FLOPs (M)")):
        x = np.arange(len(groups))
        labelled: set[str] = set()
        for gi, group in enumerate(groups):
            sub = df[df["compare with"] == group]
            width = 0.8 / max(len(sub), 1)
            ours_k = 0
            for k, (_, row) in enumerate(sub.iterrows()):
                src = row["source"]
                if src == "paper":
                    legend, hatch = "paper (reported)", ""
                else:
                    legend = "ours (measured)" if ours_k == 0 else f"ours: {row['architecture']}"
                    hatch = hatches[ours_k % len(hatches)]
                    ours_k += 1
                ax.bar(x[gi] - 0.4 + width * (k + 0.5), row[col], width, color=_COLOURS.get(src, "#1b9e77"),
                       hatch=hatch, edgecolor="black", linewidth=0.5,
                       label=None if legend in labelled else legend)
                labelled.add(legend)
        ax.set_xticks(x, groups, rotation=30, ha="right", fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3, which="both")
    axes[0].legend(fontsize=7, loc="upper right")
    fig.suptitle(title)
    return fig
