"""The cells that the finished searches of an ablation study (:mod:`cpnas.ablation`) found: their ops, and
whether two searches found the same."""

from __future__ import annotations

from typing import Sequence

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
