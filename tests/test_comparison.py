"""The pre-registered strategy comparison (cpnas.comparison) and the paired / Holm-level statistics."""

from __future__ import annotations

import pytest
from scipy import stats as sps

from cpnas import comparison as M
from cpnas.stats import mde, minimum_detectable_difference, paired, welch


def test_paired_test_removes_the_shared_variation():
    cell_effect = [40.0, 45.0, 35.0, 50.0, 42.0]
    xs = [c + 1.0 + e for c, e in zip(cell_effect, (0.1, -0.1, 0.05, 0.0, -0.05))]
    d = paired(xs, cell_effect)
    assert d["test"] == "paired" and d["diff"] == pytest.approx(1.0) and d["p"] < 0.001
    assert d["p"] == pytest.approx(sps.ttest_rel(xs, cell_effect).pvalue)
    assert welch(xs, cell_effect)["p"] > 0.5  # unpaired, the cells' spread hides the difference


def test_mde_is_computed_at_the_holm_level():
    d = welch([40, 42, 44, 41], [38, 40, 39, 41])
    assert mde(d) == pytest.approx(minimum_detectable_difference(d["std_a"], 4, d["std_b"], 4))
    assert mde(d, family_size=4) == pytest.approx(
        minimum_detectable_difference(d["std_a"], 4, d["std_b"], 4, alpha=0.05 / 4))
    assert mde(d, family_size=4) > mde(d)


def test_no_contrast_is_in_two_families():
    primary = {(a, b) for a, b, _ in M.PRIMARY}
    assert ("cpnas", "bnas") in primary and (2.0, 0.0) not in {(a, b) for a, b, _ in M.BETA_FAMILY}
    assert {b for b in M.BETAS} >= {x for a, b, _ in M.BETA_FAMILY for x in (a, b)}


def test_stopping_rule_adds_seeds_while_the_holm_mde_is_above_the_limit():
    assert M.seeds_to_add({"cpnas": [40.0] * 3, "random": [30.0] * 40}) == {
        "cpnas": 6, "rs": 6, "bnas": 6, "pcdarts": 6}
    noisy = {"cpnas": [40, 46, 34, 44, 36, 42], "rs": [38, 44, 33, 43, 35, 41], "bnas": [40.0, 40.1] * 3,
             "pcdarts": [39.0, 39.1] * 3, "random": [30.0 + i % 7 for i in range(40)]}
    more = M.seeds_to_add(noisy)
    assert more["cpnas"] == 7 and more["rs"] == 7
    capped = {k: (list(v) * 2 if k != "random" else v) for k, v in noisy.items()}
    assert "cpnas" not in M.seeds_to_add(capped) or M.seeds_to_add(capped)["cpnas"] <= M.MAX_SEEDS


def test_relative_improvement_and_percentile():
    r = M.relative_improvement([43.0, 45.0], [40.0, 40.0, 40.0])
    assert r["ri"] == pytest.approx(10.0) and r["ri_ci_low"] <= 10.0 <= r["ri_ci_high"]
    assert M.percentile(41.0, [40.0, 41.0, 42.0, 39.0]) == pytest.approx(62.5)
    rows = M.arm_rows({"cpnas": [44.0, 46.0], "random": [40.0, 40.0, 40.0]}, {"cpnas": [60.0, 70.0]})
    assert [r["arm"] for r in rows] == ["cpnas", "random"] and rows[0]["search_minutes"] == 65.0
