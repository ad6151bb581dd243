"""cpnas.stats: Welch, Holm, minimum detectable difference, verdicts, Kendall τ (checked against hand values)."""

from __future__ import annotations

import math

import pytest

from cpnas import stats


def test_welch_matches_the_textbook_formula_and_brackets_the_difference():
    d = stats.welch([20.0, 22.0, 24.0], [10.0, 11.0, 12.0])
    assert d["diff"] == pytest.approx(11.0) and d["se"] == pytest.approx(math.sqrt(4 / 3 + 1 / 3))
    assert d["df"] == pytest.approx((5 / 3) ** 2 / ((4 / 3) ** 2 / 2 + (1 / 3) ** 2 / 2))
    # t = 8.52 at df 2.94: p between the two-sided 0.01 (t = 5.84 at df 3) and 0.001 (t = 12.9) table values
    assert 0.001 < d["p"] < 0.01
    # the 95 % t interval: 11 ± t(0.975, df)·se, excluding 0 exactly as p < 0.05 does
    from scipy import stats as st
    half = st.t.ppf(0.975, d["df"]) * d["se"]
    assert (d["ci_low"], d["ci_high"]) == pytest.approx((11.0 - half, 11.0 + half))
    assert d["boot_low"] is None  # 3 seeds a side: below BOOTSTRAP_MIN_N, no percentile bootstrap
    assert stats.welch([1.0], [2.0, 3.0])["p"] is None


def test_welch_t_interval_agrees_with_p_where_the_bootstrap_would_not():
    # two seeds a side: the percentile bootstrap has 3 values per side and would exclude 0 here
    d = stats.welch([32.90, 36.00], [37.64, 37.72])
    assert d["p"] > 0.05 and d["ci_low"] < 0 < d["ci_high"] and d["boot_low"] is None
    five = stats.welch([20.0, 21.0, 22.0, 23.0, 24.0], [10.0, 11.0, 12.0, 13.0, 14.0])
    assert five["boot_low"] <= 10.0 <= five["boot_high"] and five["ci_low"] < five["boot_low"]


def test_holm_step_down():
    # sorted p: 0.01 (×3 = 0.03), 0.02 (×2 = 0.04), 0.04 (×1 = 0.04); monotone
    assert stats.holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    # a test without data yet counts in the family as p = 1: 0.3 × 3, then max(0.9, 0.5 × 2) = 1
    assert stats.holm([0.5, None, 0.3]) == pytest.approx([1.0, None, 0.9]) and stats.holm([0.5, None, 0.3])[1] is None
    assert stats.holm([0.01, None, None, None]) == pytest.approx([0.04, None, None, None])


def test_minimum_detectable_difference_shrinks_with_seeds():
    few = stats.minimum_detectable_difference(1.0, 3, 1.0, 3)
    many = stats.minimum_detectable_difference(1.0, 10, 1.0, 10)
    # n = 10 a side: (t_0.975,18 + t_0.8,18) · sqrt(0.2) = (2.101 + 0.862) · 0.447
    assert many == pytest.approx((2.101 + 0.862) * math.sqrt(0.2), abs=0.01)
    assert few > many > 0


@pytest.mark.parametrize("a, b, sign, expected", [
    ((50, 51, 52), (40, 41, 42), +1, "supported"),
    ((50, 51, 52), (40, 41, 42), -1, "contradicted"),
    ((50, 55, 45), (49, 52, 47), +1, "not resolved"),
    ((11, 12, 11.5), (10, 10.5, 10.2), +1, "not evidence"),  # within 3 points of chance (10 %)
])
def test_verdicts(a, b, sign, expected):
    d = stats.welch(a, b)
    v = stats.verdict(d, paper_sign=sign, mean_a=sum(a) / 3, mean_b=sum(b) / 3, chance=10.0)
    assert v["verdict"] == expected
    assert (v["mde"] is not None) == (expected == "not resolved")


def test_kendall_tau_with_interval():
    out = stats.kendall([1, 2, 3, 4, 5, 6], [1.5, 2.5, 2.9, 4.1, 5.5, 6.2])
    assert out["tau"] == pytest.approx(1.0) and out["n"] == 6 and out["p"] < 0.01
    assert out["ci_low"] <= 1.0 <= out["ci_high"] + 1e-12
    assert stats.kendall([1, 2], [2, 1])["tau"] is None


def test_the_batched_tau_b_is_scipys_on_every_resample_ties_and_constant_rows_included():
    import numpy as np
    from scipy.stats import kendalltau

    rng = np.random.default_rng(3)
    x = rng.integers(0, 6, (300, 17)).astype(float)  # many ties
    y = x + rng.normal(0, 2, x.shape).round()
    x[0], y[1] = 2.0, 5.0  # a constant row on each side: no τ
    ours = stats.kendall_tau_b(x, y)
    with np.errstate(all="ignore"):
        theirs = np.array([kendalltau(a, b).statistic for a, b in zip(x, y)])
    assert np.isnan(ours[:2]).all() and np.isnan(theirs[:2]).all()
    np.testing.assert_allclose(ours[2:], theirs[2:], rtol=0, atol=1e-12)
    # the interval is the percentile interval of SciPy's τ over the same resamples
    xs, ys = rng.normal(size=25), rng.normal(size=25)
    draws = np.random.default_rng(0).integers(0, 25, (500, 25))
    with np.errstate(all="ignore"):
        ref = np.array([kendalltau(xs[d], ys[d]).statistic for d in draws])
    ref = ref[np.isfinite(ref)]
    out = stats.kendall(xs, ys, resamples=500, seed=0)
    assert out["ci_low"] == pytest.approx(np.percentile(ref, 2.5), abs=1e-12)
    assert out["ci_high"] == pytest.approx(np.percentile(ref, 97.5), abs=1e-12)
