"""Statistics of the comparisons we report, in one place (SciPy).

* :func:`welch` — difference of two means over seeds with Welch's t-test
  (``scipy.stats.ttest_ind(equal_var=False)``), its 95 % t interval, and a
  percentile-bootstrap 95 % interval of the difference (``scipy.stats.bootstrap``),
  which is reported only from :data:`BOOTSTRAP_MIN_N` seeds a side;
* :func:`paired` — the paired t-test for arms that share a cell and a seed
  (``scipy.stats.ttest_rel``), and :func:`mde`, the minimum detectable difference of
  either test at the level its verdict uses;
* :func:`holm` — Holm's step-down correction across the tests of one figure
  (Holm 1979), which keeps the family-wise error rate at ``alpha``;
* :func:`minimum_detectable_difference` — the smallest true difference the seeds
  could have detected at 80 % power (two-sided, Welch's df), from the measured stds;
* :func:`verdict` — supported / contradicted / not resolved, with the rule that a
  comparison whose either side is within 3 points of chance is never evidence;
* :func:`kendall` — Kendall τ-b with a paired percentile-bootstrap interval;
* :func:`relative_improvement` — a search strategy's relative improvement over random sampling
  (Yang et al., ICLR 2020) with a bootstrap interval, and :func:`percentile`, a cell's rank within
  the benchmark;
* over the result rows of a study (one dict per finished run: ``study``, ``label``, ``seed``,
  ``top1``, …): :func:`summarize` (mean ± std per arm), :func:`difference` (paired when both arms
  trained one cell per seed, :func:`pairing`; else Welch), and :func:`judged`, the tests of one
  figure Holm-corrected together, each with its verdict.
"""

from __future__ import annotations

import math
import statistics
import warnings
from typing import Any, Sequence


CHANCE_MARGIN = 3.0
"""Points of top-1 above chance below which a mean is not evidence of anything."""


BOOTSTRAP_MIN_N = 5
"""Seeds a side from which the percentile bootstrap interval is reported. With 2-3 seeds a side the
resampled means take a handful of values only (2 seeds: 3 per side), and the percentile interval is
far narrower than the t interval: at n = 2 it excluded 0 where Welch's p was 0.28. Below this the
Welch t interval (``ci_low``, ``ci_high``), which agrees with the p-value, is the only one shown."""


def welch(xs: Sequence[float], ys: Sequence[float], *, resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """``mean(xs) − mean(ys)`` with Welch's t-test and a bootstrap interval.

    Returns ``diff, se, t, df, p, ci_low, ci_high, boot_low, boot_high, n_a, n_b, std_a,
    std_b``; ``None`` values where a side has fewer than 2 seeds. ``se = sqrt(s_a²/n_a +
    s_b²/n_b)``; ``df`` by Welch-Satterthwaite. ``ci_low``/``ci_high`` is the 95 % Welch t
    interval ``diff ± t_{0.975, df}·se`` (it excludes 0 exactly when p < 0.05);
    ``boot_low``/``boot_high`` the percentile bootstrap over seeds, ``None`` below
    :data:`BOOTSTRAP_MIN_N` seeds a side. When every seed of both sides gave one value, the
    test is degenerate: p = 1 for equal means, 0 otherwise.
    """
    import numpy as np
    from scipy import stats

    xs, ys = [float(v) for v in xs], [float(v) for v in ys]
    out: dict[str, Any] = {"test": "Welch", "diff": None, "se": None, "t": None, "df": None, "p": None, "ci_low": None,
                           "ci_high": None, "boot_low": None, "boot_high": None, "n_a": len(xs), "n_b": len(ys),
                           "std_a": None, "std_b": None}
    if len(xs) < 2 or len(ys) < 2:
        return out
    va, vb = statistics.variance(xs), statistics.variance(ys)
    diff = statistics.fmean(xs) - statistics.fmean(ys)
    se = math.sqrt(va / len(xs) + vb / len(ys))
    out.update(diff=diff, se=se, std_a=math.sqrt(va), std_b=math.sqrt(vb))
    if se == 0:
        out.update(t=0.0 if diff == 0 else math.copysign(math.inf, diff), p=1.0 if diff == 0 else 0.0,
                   ci_low=diff, ci_high=diff)
        return out
    res = stats.ttest_ind(xs, ys, equal_var=False)
    ci = res.confidence_interval(0.95)
    out.update(t=float(res.statistic), p=float(res.pvalue), df=float(res.df), ci_low=float(ci.low),
               ci_high=float(ci.high))
    if min(len(xs), len(ys)) < BOOTSTRAP_MIN_N:
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate resamples (a side of equal values) are fine here
        boot = stats.bootstrap((np.asarray(xs), np.asarray(ys)), lambda a, b, axis=-1: a.mean(axis) - b.mean(axis),
                               n_resamples=resamples, method="percentile", vectorized=True,
                               random_state=np.random.default_rng(seed))
    out.update(boot_low=float(boot.confidence_interval.low), boot_high=float(boot.confidence_interval.high))
    return out


def paired(xs: Sequence[float], ys: Sequence[float]) -> dict[str, Any]:
    """``mean(xs − ys)`` over pairs that share a cell and a seed, with the paired t-test.

    Returns the keys of :func:`welch` (``std_a``/``std_b`` are each arm's std) plus
    ``test = "paired"``, ``n`` (pairs) and ``std_diff``, the std of the differences;
    ``se = std_diff / √n``, df = n − 1, and the 95 % t interval. Pairing removes the
    cell-and-seed variation the two arms share (``scipy.stats.ttest_rel``).
    """
    from scipy import stats

    xs, ys = [float(v) for v in xs], [float(v) for v in ys]
    if len(xs) != len(ys):
        raise ValueError(f"paired samples need equal lengths, got {len(xs)} and {len(ys)}")
    n = len(xs)
    out: dict[str, Any] = {"test": "paired", "diff": None, "se": None, "t": None, "df": None, "p": None,
                           "ci_low": None, "ci_high": None, "boot_low": None, "boot_high": None, "n_a": n, "n_b": n,
                           "n": n, "std_a": None, "std_b": None, "std_diff": None}
    if n < 2:
        return out
    d = [a - b for a, b in zip(xs, ys)]
    sd = statistics.stdev(d)
    diff = statistics.fmean(d)
    se = sd / math.sqrt(n)
    out.update(diff=diff, se=se, std_diff=sd, std_a=statistics.stdev(xs), std_b=statistics.stdev(ys), df=n - 1)
    if se == 0:
        out.update(t=0.0 if diff == 0 else math.copysign(math.inf, diff), p=1.0 if diff == 0 else 0.0,
                   ci_low=diff, ci_high=diff)
        return out
    res = stats.ttest_rel(xs, ys)
    ci = res.confidence_interval(0.95)
    out.update(t=float(res.statistic), p=float(res.pvalue), ci_low=float(ci.low), ci_high=float(ci.high))
    return out


def minimum_detectable_paired(std_diff: float, n: int, *, alpha: float = 0.05, power: float = 0.8) -> float | None:
    """The true mean difference a two-sided paired t-test at ``alpha`` would detect with probability ``power``."""
    from scipy import stats

    if n < 2:
        return None
    return float((stats.t.ppf(1 - alpha / 2, n - 1) + stats.t.ppf(power, n - 1)) * std_diff / math.sqrt(n))


def mde(d: dict[str, Any], *, alpha: float = 0.05, family_size: int = 1, power: float = 0.8) -> float | None:
    """The minimum detectable difference of a :func:`welch` or :func:`paired` result at the level its verdict uses.

    Holm tests the smallest of ``family_size`` p-values at ``alpha / family_size``; a
    difference is detectable for the verdict only if it clears that level, so the MDE
    is computed there (at ``alpha`` for a family of one).
    """
    level = alpha / max(1, family_size)
    if d.get("test") == "paired":
        return None if d.get("std_diff") is None else minimum_detectable_paired(d["std_diff"], d["n"], alpha=level,
                                                                                  power=power)
    if d.get("std_a") is None or d.get("std_b") is None:
        return None
    return minimum_detectable_difference(d["std_a"], d["n_a"], d["std_b"], d["n_b"], alpha=level, power=power)


def holm(pvalues: Sequence[float | None], alpha: float = 0.05) -> list[float | None]:
    """Holm-adjusted p-values (Holm, 1979: step-down; monotone, capped at 1).

    A test is significant at family-wise level ``alpha`` when its adjusted p < ``alpha``.
    A test without a p-value (``None``: too few seeds yet) stays ``None`` but still counts in the
    family's size, as if its p were 1: a family fixed before the runs is corrected for all its tests,
    not only for those that have data so far.
    """
    idx = [i for i, p in enumerate(pvalues) if p is not None]
    order = sorted(idx, key=lambda i: pvalues[i])
    m = len(pvalues)
    adjusted: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * float(pvalues[i])))
        adjusted[i] = running
    return adjusted


def minimum_detectable_difference(std_a: float, n_a: int, std_b: float, n_b: int, *, alpha: float = 0.05,
                                  power: float = 0.8) -> float | None:
    """The true difference a two-sided Welch test at ``alpha`` would detect with probability ``power``.

    ``(t_{1−α/2, df} + t_{power, df}) · se`` with the measured stds and Welch's df
    (the usual normal-approximation formula with t quantiles for few seeds).
    """
    from scipy import stats

    if n_a < 2 or n_b < 2:
        return None
    va, vb = std_a ** 2 / n_a, std_b ** 2 / n_b
    se = math.sqrt(va + vb)
    if se == 0:
        return 0.0
    df = (va + vb) ** 2 / (va ** 2 / (n_a - 1) + vb ** 2 / (n_b - 1)) if va and vb else n_a + n_b - 2
    return float((stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df)) * se)


def verdict(d: dict[str, Any], *, paper_sign: int, mean_a: float, mean_b: float, chance: float,
            p_adjusted: float | None = None, alpha: float = 0.05, family_size: int = 1) -> dict[str, Any]:
    """One of ``supported``, ``contradicted``, ``not resolved`` or ``not evidence`` for a :func:`welch` result.

    ``paper_sign`` is +1 when the paper says ``a > b``, −1 when it says ``a < b``.
    ``not evidence``: a side's mean is within :data:`CHANCE_MARGIN` points of
    ``chance`` (a net that learned nothing compares nothing). Otherwise the test
    (Holm-adjusted p when given) decides; a non-significant one reports the
    minimum difference the seeds could have detected at 80 % power, at the level the
    verdict uses (:func:`mde`: ``alpha / family_size`` for a Holm family).
    """
    p = p_adjusted if p_adjusted is not None else d.get("p")
    out = {"verdict": "not resolved", "p": d.get("p"), "p_adjusted": p_adjusted, "mde": None}
    if min(mean_a, mean_b) < chance + CHANCE_MARGIN:
        out["verdict"] = "not evidence"
        return out
    if d.get("diff") is None or p is None:
        return out
    if p < alpha and d["diff"] != 0:
        out["verdict"] = "supported" if math.copysign(1, d["diff"]) == paper_sign else "contradicted"
    else:
        out["mde"] = mde(d, alpha=alpha, family_size=family_size)
    return out


def kendall(x: Sequence[float], y: Sequence[float], *, resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Kendall τ-b of paired values, its two-sided p-value, and a 95 % percentile-bootstrap interval.

    τ and p are SciPy's ``kendalltau``; the interval resamples pairs with replacement.
    With fewer than 3 pairs τ is undefined, with fewer than 4 the interval. A resample
    that repeats one pair n times has no τ (NaN) and is left out. The resamples' τ-b
    are computed together (:func:`kendall_tau_b`), in batches.
    """
    import numpy as np
    from scipy import stats

    n = len(x)
    if n < 3:
        return {"n": n, "tau": None, "p": None, "ci_low": None, "ci_high": None}
    res = stats.kendalltau(x, y)
    ci = (None, None)
    if n >= 4:
        rng = np.random.default_rng(seed)
        xs, ys = np.asarray(x, float), np.asarray(y, float)
        draws = rng.integers(0, n, (resamples, n))
        batch = max(1, 2_000_000 // (n * n))
        taus = np.concatenate([kendall_tau_b(xs[d], ys[d]) for d in np.array_split(draws, -(-resamples // batch))])
        taus = taus[np.isfinite(taus)]
        if taus.size:
            ci = (float(np.percentile(taus, 2.5)), float(np.percentile(taus, 97.5)))
    return {"n": n, "tau": float(res.statistic), "p": float(res.pvalue), "ci_low": ci[0], "ci_high": ci[1]}


def kendall_tau_b(x: "Any", y: "Any") -> "Any":
    """Kendall τ-b of each row pair of ``x`` and ``y`` (arrays of shape ``(rows, n)``): NaN where a row is
    constant.

    τ-b = Σ_{i<j} sgn(x_i − x_j) sgn(y_i − y_j) / √(Σ_{i<j} sgn(x_i − x_j)² · Σ_{i<j} sgn(y_i − y_j)²),
    that is (concordant − discordant) / √((n₀ − n₁)(n₀ − n₂)) with n₁, n₂ the pairs tied in x and in y
    (Kendall, 1945), the statistic of ``scipy.stats.kendalltau``; summing over all ordered pairs doubles
    every sum and leaves the ratio.
    """
    import numpy as np

    x, y = np.atleast_2d(np.asarray(x, float)), np.atleast_2d(np.asarray(y, float))
    sx = np.sign(x[:, :, None] - x[:, None, :])
    sy = np.sign(y[:, :, None] - y[:, None, :])
    num = (sx * sy).sum(axis=(1, 2))
    den = np.sqrt((sx * sx).sum(axis=(1, 2)) * (sy * sy).sum(axis=(1, 2)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


# --------------------------------------------------------------------------- rows of a study

CHANCE_TOP1 = 10.0
"""Top-1 (%) of a guess among CIFAR-10's 10 classes: within 3 points of it a mean is not evidence."""


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


def summarize(rows: Sequence[dict[str, Any]], study: str, by: str = "label") -> "Any":
    """Mean ± std (sample std, n−1) of top-1 per ``by`` value of one study, with n and the costs."""
    import pandas as pd

    df = pd.DataFrame([r for r in rows if r["study"] == study])
    if df.empty:
        return pd.DataFrame(columns=[by, "n", "top1 mean", "top1 std", "search (min)", "train (min)"])
    out = []
    for value, grp in df.groupby(by, sort=False):
        top1 = list(grp["top1"])
        search = [s for s in grp["search_wall_clock_s"] if s is not None and not (isinstance(s, float) and math.isnan(s))]
        out.append({by: value, "n": len(top1), "top1 mean": statistics.fmean(top1),
                    "top1 std": statistics.stdev(top1) if len(top1) > 1 else float("nan"),
                    "search (min)": statistics.fmean(search) / 60 if search else float("nan"),  # float column
                    "train (min)": statistics.fmean(grp["train_wall_clock_s"]) / 60})
    return pd.DataFrame(out)


def difference(rows: Sequence[dict[str, Any]], study: str, a: Any, b: Any, by: str = "label",
               measure: str = "top1") -> dict[str, Any]:
    """Mean ``measure`` (default top-1) of ``a`` minus that of ``b`` within one study, over seeds.

    When both arms trained the same cell at the same seeds (the CP loss against its parts,
    Table 1's CP loss against cross-entropy), the test is paired (:func:`cpnas.stats.paired`);
    otherwise Welch's (:func:`cpnas.stats.welch`). Adds ``a``, ``b`` and ``ratio`` (= t).
    """
    ra = [r for r in rows if r["study"] == study and r[by] == a]
    rb = [r for r in rows if r["study"] == study and r[by] == b]
    pairs = pairing(ra, rb)
    if pairs is not None:
        d = paired([x[measure] for x, _ in pairs], [y[measure] for _, y in pairs])
    else:
        d = welch([r[measure] for r in ra], [r[measure] for r in rb])
    return {"a": a, "b": b, **d, "ratio": d["t"]}


def pairing(ra: Sequence[dict[str, Any]], rb: Sequence[dict[str, Any]]) -> list[tuple[dict, dict]] | None:
    """The rows of two arms matched by seed, when both trained one cell per seed, the same in both; else None."""
    if not ra or not rb or any(r.get("genotype") is None for r in (*ra, *rb)):
        return None
    by_seed_a, by_seed_b = {r["seed"]: r for r in ra}, {r["seed"]: r for r in rb}
    if len(by_seed_a) != len(ra) or len(by_seed_b) != len(rb) or set(by_seed_a) != set(by_seed_b):
        return None
    if any(by_seed_a[s]["genotype"] != by_seed_b[s]["genotype"] for s in by_seed_a):
        return None
    return [(by_seed_a[s], by_seed_b[s]) for s in sorted(by_seed_a)]


def significant(d: dict[str, Any], level: float = 0.05) -> bool:
    """Whether a :func:`difference` is beyond the seed-to-seed noise (Welch's p below ``level``)."""
    return d["p"] is not None and d["p"] < level


def judged(rows: Sequence[dict[str, Any]], study: str, tests: Sequence[tuple[Any, Any, int]],
           by: str = "label", chance: float = CHANCE_TOP1, measure: str = "top1") -> list[dict[str, Any]]:
    """Tests ``a − b`` of one figure (paired where :func:`pairing` pairs the arms, else Welch), Holm-corrected
    together, each with its verdict.

    ``tests`` holds ``(a, b, paper_sign)``: +1 where the paper says a > b, −1 where a < b.
    ``measure`` is the row field compared (default top-1); ``chance`` is its chance level
    (``-inf`` for one that has none, e.g. a conv share).
    """
    return judged_across(rows, [(study, a, b, sign) for a, b, sign in tests], by=by, chance=chance,
                         measure=measure)


def judged_across(rows: Sequence[dict[str, Any]], tests: Sequence[tuple[str, Any, Any, int]], by: str,
                  chance: float, measure: str = "top1") -> list[dict[str, Any]]:
    """:func:`judged` with a study per test, ``(study, a, b, paper_sign)``: one Holm family across studies."""
    diffs = [difference(rows, study, a, b, by=by, measure=measure) for study, a, b, _ in tests]
    out = []
    for (study, a, b, sign), d, p_adj in zip(tests, diffs, holm([d["p"] for d in diffs])):
        means = [statistics.fmean(r[measure] for r in rows if r["study"] == study and r[by] == v) if d["n_" + k]
                 else float("nan") for v, k in ((a, "a"), (b, "b"))]
        v = verdict(d, paper_sign=sign, mean_a=means[0], mean_b=means[1], chance=chance, p_adjusted=p_adj,
                    family_size=len(diffs))
        out.append({**d, **v, "mean_a": means[0], "mean_b": means[1]})
    return out
