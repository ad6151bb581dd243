"""The paper's strategy claims at power: pre-registered contrasts, families, stopping rule and effect sizes.

Written before any of its runs, so that the analysis cannot follow the data.

**Arms.** Each search strategy runs at the budget the search-ranking study picks
(:func:`cpnas.ranking.choose_budget`), each found cell is trained once at the ``cpu``
training budget and joins the cell benchmark (:mod:`cpnas.cellbench`, study
:data:`STUDY`); the top-1 of an arm is that of its cells:

* ``cpnas`` — CP-NAS at β_P = 2; ``bnas`` — BNAS† (β_P = 0); ``pcdarts`` — PC-DARTS;
  ``rs`` — random search with weight sharing at CP-NAS's compute (:mod:`cpnas.randomsearch`);
* ``random`` — random sampling: the benchmark's uniform cells (no search).

**Families** (one Holm correction each; no contrast is in two families):

* :data:`PRIMARY`: CP-NAS against random sampling, random search, BNAS† and PC-DARTS
  (a − b, the paper's sign +1: CP-NAS better). "β_P = 2 against 0" *is* CP-NAS against
  BNAS† and is counted here only;
* :data:`BETA_FAMILY` (Fig. 6 left): β_P = 2 against 1 and against 4, from searches at
  β_P ∈ {0, 1, 2, 4} (β_P = 0 and 2 are the BNAS† and CP-NAS arms);
* the convolution share against β_P (§3.4): Kendall τ-b over the found cells, one test.

Welch's test compares arms (their cells differ); the paired test is used wherever both
arms share a cell and a seed (:func:`cpnas.ablation.pairing`). Each verdict carries its
minimum detectable difference at its Holm level (:func:`cpnas.stats.mde`).

**Stopping rule** (:func:`seeds_to_add`): every search arm starts with
:data:`MIN_SEEDS` search seeds. After that, while a primary contrast's MDE at its Holm
level exceeds :data:`MDE_LIMIT` points, both of its arms get another seed, up to
:data:`MAX_SEEDS`. Random sampling has the benchmark's 40 cells from the start.

**Effect sizes** (:func:`relative_improvement`, :func:`percentile`): the relative
improvement over random sampling of Yang et al. (ICLR 2020),
RI = 100 · (top-1 − mean random) / mean random, with a percentile-bootstrap interval
over the arm's cells and the random cells; and each found cell's percentile within
the benchmark's uniform cells.
"""

from __future__ import annotations

import statistics
from typing import Any, Sequence

STUDY = "strategies"
"""The comparison's folder in the results layout (searches: ``results/<scale>/strategies/search/…``)."""

ARMS: dict[str, tuple[str | None, float | None]] = {
    "cpnas": ("cpnas", 2.0), "bnas": ("bnas", None), "pcdarts": ("pcdarts", None), "rs": ("rs", None),
    "random": (None, None),
}
"""Arm → (search strategy, β_P); ``random`` has no search (the benchmark's uniform cells)."""

PRIMARY: tuple[tuple[str, str, int], ...] = (("cpnas", "random", +1), ("cpnas", "rs", +1), ("cpnas", "bnas", +1),
                                             ("cpnas", "pcdarts", +1))
"""The primary family: ``(a, b, paper sign)`` for a − b."""

BETAS: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0)
"""Fig. 6 (left): the β_P values searched (0 and 2 are the BNAS† and CP-NAS arms)."""

BETA_FAMILY: tuple[tuple[float, float, int], ...] = ((2.0, 1.0, +1), (2.0, 4.0, +1))
"""Fig. 6 (left) without β_P = 2 vs 0 (in :data:`PRIMARY`): the paper's peak at β_P = 2."""

MIN_SEEDS, MAX_SEEDS = 6, 12
MDE_LIMIT = 3.0
"""Points of top-1: a primary contrast whose Holm-level MDE is above this gets more seeds (up to MAX_SEEDS)."""

ALPHA = 0.05


def contrast(values: dict[str, Sequence[float]], a: str, b: str) -> dict[str, Any]:
    """Welch's test of arm ``a`` minus arm ``b`` (their cells differ)."""
    from cpnas.stats import welch

    return {"a": a, "b": b, **welch(values.get(a, ()), values.get(b, ()))}


def judge_family(values: dict[str, Sequence[float]], family: Sequence[tuple[Any, Any, int]], *,
                 chance: float = 10.0) -> list[dict[str, Any]]:
    """Every contrast of one family, Holm-corrected together, each with its verdict and its Holm-level MDE."""
    from cpnas.stats import holm, mde, verdict

    diffs = [contrast(values, a, b) for a, b, _ in family]
    size = sum(d["p"] is not None for d in diffs)
    out = []
    for (a, b, sign), d, p_adj in zip(family, diffs, holm([d["p"] for d in diffs])):
        means = [statistics.fmean(values[k]) if values.get(k) else float("nan") for k in (a, b)]
        v = verdict(d, paper_sign=sign, mean_a=means[0], mean_b=means[1], chance=chance, p_adjusted=p_adj,
                    family_size=size)
        out.append({**d, **v, "mean_a": means[0], "mean_b": means[1], "family_size": size,
                    "mde_holm": mde(d, alpha=ALPHA, family_size=size)})
    return out


def seeds_to_add(values: dict[str, Sequence[float]], family: Sequence[tuple[str, str, int]] = PRIMARY,
                 ) -> dict[str, int]:
    """The stopping rule: how many search seeds each arm should have next (arms needing none are absent).

    An arm below :data:`MIN_SEEDS` goes to it. Then, for every contrast whose Holm-level
    MDE is above :data:`MDE_LIMIT` (or cannot be computed), each search arm of it below
    :data:`MAX_SEEDS` gets one more seed. ``random`` is never extended.
    """
    want: dict[str, int] = {}
    for arm in {x for a, b, _ in family for x in (a, b)}:
        if ARMS[arm][0] is not None and len(values.get(arm, ())) < MIN_SEEDS:
            want[arm] = MIN_SEEDS
    if want:
        return want
    for d in judge_family(values, family):
        if d["mde_holm"] is None or d["mde_holm"] > MDE_LIMIT:
            for arm in (d["a"], d["b"]):
                n = len(values.get(arm, ()))
                if ARMS[arm][0] is not None and n < MAX_SEEDS:
                    want[arm] = max(want.get(arm, 0), n + 1)
    return want


def relative_improvement(arm: Sequence[float], random: Sequence[float], *, resamples: int = 2000,
                         seed: int = 0) -> dict[str, Any]:
    """RI = 100 · (mean arm − mean random) / mean random (Yang et al., ICLR 2020), with a percentile
    bootstrap 95 % interval resampling both sides."""
    import numpy as np

    a, r = np.asarray(arm, float), np.asarray(random, float)
    if a.size == 0 or r.size == 0:
        return {"ri": None, "ri_ci_low": None, "ri_ci_high": None}
    ri = 100 * (a.mean() - r.mean()) / r.mean()
    rng = np.random.default_rng(seed)
    boots = [100 * (rng.choice(a, a.size).mean() - (m := rng.choice(r, r.size).mean())) / m for _ in range(resamples)]
    return {"ri": float(ri), "ri_ci_low": float(np.percentile(boots, 2.5)),
            "ri_ci_high": float(np.percentile(boots, 97.5))}


def percentile(top1: float, benchmark: Sequence[float]) -> float:
    """The percentage of ``benchmark`` top-1s below ``top1`` (ties count half)."""
    if not benchmark:
        return float("nan")
    below = sum(v < top1 for v in benchmark) + 0.5 * sum(v == top1 for v in benchmark)
    return 100.0 * below / len(benchmark)


def arm_rows(values: dict[str, Sequence[float]], minutes: dict[str, Sequence[float]] | None = None
             ) -> list[dict[str, Any]]:
    """Per arm: n, mean ± std, RI over random sampling with its interval, mean percentile, search minutes."""
    random = list(values.get("random", ()))
    rows = []
    for arm in ARMS:
        xs = list(values.get(arm, ()))
        if not xs:
            continue
        ri = relative_improvement(xs, random) if arm != "random" else {"ri": 0.0, "ri_ci_low": None,
                                                                       "ri_ci_high": None}
        mins = list((minutes or {}).get(arm, ()))
        rows.append({"arm": arm, "n": len(xs), "top1_mean": statistics.fmean(xs),
                     "top1_std": statistics.stdev(xs) if len(xs) > 1 else float("nan"), **ri,
                     "percentile": statistics.fmean(percentile(x, random) for x in xs) if random else float("nan"),
                     "search_minutes": statistics.fmean(mins) if mins else float("nan")})
    return rows
