"""The cells that finished searches found: their ops, whether two searches found the same, and
whether a cell's share of convolutions goes with its trained accuracy (notebooks 03 and 05)."""

from __future__ import annotations

from typing import Any, Sequence

from cpnas.ablation import Run, beta_of


def genotype_table(runs: Sequence[Run], scale: str):
    """One row per finished search of ``runs``: β_P, seed, kept edges, the share of convolution ops.

    ``cells`` is a short digest of both found cells: two searches with the same digest
    found the same architecture (e.g. two β_P that rank every edge's ops the same way).
    """
    import hashlib
    import json

    import pandas as pd

    from cpnas.genotype import load_genotype
    from cpnas.ops import CONV_OPS, POOL_OPS
    from cpnas.runs import GENOTYPE
    from cpnas.search import is_finished

    out = []
    for run in runs:
        sdir = run.search_dir(scale)
        if sdir is None or not is_finished(sdir):
            continue
        g = load_genotype(sdir / GENOTYPE)
        ops = [e[0] for kind in ("normal", "reduce") for e in g.cell(kind)[0]]
        out.append({"study": run.study, "label": run.label, "beta_p": beta_of(run), "seed": run.seed,
                    "kept edges": len(ops), "conv ops": sum(o in CONV_OPS for o in ops),
                    "pool ops": sum(o in POOL_OPS for o in ops),
                    "conv share": sum(o in CONV_OPS for o in ops) / max(1, len(ops)),
                    "cells": hashlib.sha1(json.dumps(g.to_dict(), sort_keys=True).encode()).hexdigest()[:8]})
    return pd.DataFrame(out)


def conv_share_vs_accuracy(table, rows: Sequence[dict[str, Any]]) -> tuple[Any, dict[str, Any]]:
    """Each searched cell's convolution share next to its trained top-1, and Kendall's τ-b between them.

    Tests the explanation that convolution-heavy 1-bit cells train worse at small budgets on
    every searched cell trained at the small size: ``table`` is :func:`genotype_table` of the
    runs (the β_P, ``gap_penalty`` and strategy studies), ``rows`` their results; each search is
    paired with its own training (same study, label, seed). A cell found twice at one seed (the
    β_P = 2 search is also the strategy study's CP-NAS; two β_P that rank every op alike) is
    one training result and counted once. Returns the pairs and :func:`cpnas.stats.kendall`
    (τ-b, its p-value and a percentile-bootstrap interval over cells).
    """
    import pandas as pd

    from cpnas.stats import kendall

    columns = ["study", "label", "seed", "cells", "conv share", "top1"]
    acc = pd.DataFrame([{k: r[k] for k in ("study", "label", "seed", "top1")} for r in rows
                        if r["study"] in ("beta", "beta-gap", "strategy")])
    if len(table) == 0 or acc.empty:
        return pd.DataFrame(columns=columns), kendall([], [])
    merged = table.merge(acc, on=["study", "label", "seed"]).drop_duplicates(["cells", "seed"])[columns]
    return merged.reset_index(drop=True), kendall(list(merged["conv share"]), list(merged["top1"]))


def same_cells(table) -> list[tuple[float, ...]]:
    """Groups of β_P values whose searches found the same cells at every seed (from :func:`genotype_table`).

    Eq. 1 ranks an edge's ops by z = (1 − β_P)·A_C + β_P·A_P; two β_P that order every
    pair of scores the same way make the same removals, and the Child's training does
    not depend on β_P, so such searches are identical and their trainings too: their
    points in Fig. 6 are one result, not independent evidence.
    """
    if len(table) == 0:
        return []
    beta = table[table["beta_p"].notna()]
    grid = beta.pivot_table(index="beta_p", columns="seed", values="cells", aggfunc="first")
    grid = grid.dropna()
    groups: dict[tuple[str, ...], list[float]] = {}
    for b, digests in grid.iterrows():
        groups.setdefault(tuple(digests), []).append(float(b))
    return [tuple(g) for g in groups.values() if len(g) > 1]
