"""cpnas.claims: the README's claim rows, each with one verdict computed from the runs."""

from pathlib import Path

import pandas as pd
import pytest

from cpnas import claims, table_runs

ROOT = Path(__file__).resolve().parents[1]


def _rows(study, key, means, spread=0.5):
    out = []
    for value, mean in means.items():
        for seed, e in enumerate((-spread, 0.0, spread)):
            out.append({"study": study, "label": value if key == "label" else f"{value:g}",
                        "beta_p": value if key == "beta_p" else None, "seed": seed, "top1": mean + e,
                        "strategy": value if study == "strategy" else None,
                        "search_wall_clock_s": 60.0, "search_epochs": 1})
    return out


def test_table1_claims_carry_one_verdict_each():
    rows = _rows("table1", "label", {"CP-NAS (Medium)": 40.0, "BNAS†": 30.0, "CP-NAS (Small)": 35.0,
                                     "CP-NAS (Small), cross-entropy only": 35.1, "CP-NAS (Large)": 30.0})
    out = claims.table1_claims(rows, "cpu")
    assert [r["verdict"].split("**")[1] for r in out] == ["supported", "not resolved", "contradicted"]
    assert "40.00 ± 0.50 % (n = 3)" in out[0]["ours"] and "could detect a difference of" in out[1]["verdict"]
    assert all(r["claim"].startswith("Table 1:") for r in out)


def test_missing_seeds_read_not_measured_and_chance_is_not_evidence():
    one = _rows("table1", "label", {"CP-NAS (Medium)": 40.0})[:1] + _rows("table1", "label", {"BNAS†": 30.0})
    assert claims.table1_claims(one, "cpu")[0]["verdict"] == claims.NOT_MEASURED
    near = _rows("table1", "label", {"CP-NAS (Medium)": 12.0, "BNAS†": 30.0})
    assert "**not evidence**" in claims.table1_claims(near, "cpu")[0]["verdict"]


def test_strategy_and_beta_claims_are_their_own_holm_families():
    values = {"cpnas": [40.0, 40.5, 41.0], "random": [30.0, 31.0, 32.0, 33.0], "rs": [40.2, 40.6, 41.1],
              "bnas": [50.0, 50.5, 51.0], "pcdarts": [39.0]}
    out = {r["claim"]: r["verdict"] for r in claims.strategy_claims(values, "cpu")}
    assert len(out) == 4
    assert out["Fig. 6 (right): CP-NAS beats random sampling (the benchmark's uniform cells)"].startswith("**supported")
    assert next(v for c, v in out.items() if "random search" in c).startswith("**not resolved")
    assert next(v for c, v in out.items() if "BNAS†" in c).startswith("**contradicted")
    assert out["Fig. 6 (right): CP-NAS beats PC-DARTS"] == claims.NOT_MEASURED  # one seed
    # Holm over the three contrasts that have a p-value: the MDE is at that level
    assert "at the Holm level" in next(v for c, v in out.items() if "random search" in c)
    betas = {2.0: [40.0, 40.5, 41.0], 1.0: [30.0, 30.5, 31.0], 4.0: [40.1, 40.4, 41.2]}
    beta = claims.beta_claims(betas, "cpu")
    assert [r["verdict"].split("**")[1] for r in beta] == ["supported", "not resolved"]
    assert "β_P = 2 vs 1" in beta[0]["claim"] and "β_P = 2 vs 4" in beta[1]["claim"]


def test_conv_share_speed_table2_and_loss_claims():
    conv = claims.conv_share_claim({"n": 20, "tau": -0.5, "p": 0.003, "ci_low": -0.8, "ci_high": -0.2}, "cpu")
    assert conv["verdict"].startswith("**supported") and "20 found cells" in conv["ours"]
    assert claims.conv_share_claim({"n": 20, "tau": 0.5, "p": 0.003}, "cpu")["verdict"].startswith("**contradicted")
    assert claims.conv_share_claim({"n": 20, "tau": -0.1, "p": 0.4}, "cpu")["verdict"].startswith("**not resolved")
    assert claims.conv_share_claim({"n": 2, "tau": None}, "cpu")["verdict"] == claims.NOT_MEASURED
    t2 = claims.table2_claim({0: 30.0, 1: 31.0, 2: 32.0}, {0: 40.0, 1: 41.0, 2: 42.0}, "cpu")
    assert t2["verdict"].startswith("**supported") and "paired" in t2["verdict"]
    # the same values with a seed missing on one side cannot pair: Welch's test
    assert "Welch" in claims.table2_claim({0: 30.0, 1: 31.0, 2: 32.0}, {0: 40.0, 1: 41.0}, "cpu")["verdict"]
    # thread-minutes per epoch, projected to the paper's 105 vs 50 epochs: about 18 vs 26 min
    speed = claims.speed_claim({"cpnas": [0.17, 0.175, 0.18], "pcdarts": [0.5, 0.52, 0.54]}, "cpu")
    assert speed["verdict"].startswith("**supported") and " min" in speed["ours"]
    assert claims.speed_claim({"cpnas": [0.17]}, "cpu")["verdict"] == claims.NOT_MEASURED
    loss = _rows("loss", "label", {"CP loss (Eq. 4)": 40.0, "cross-entropy": 30.0, "+ center term": 40.1,
                                   "+ kernel term (H = Child)": 40.0})
    out = claims.loss_claims(loss, "cpu")
    assert [r["verdict"].split("**")[1] if "**" in r["verdict"] else r["verdict"] for r in out] == \
        ["supported", "not resolved", claims.NOT_MEASURED, "not resolved"]


def test_a_holm_p_below_a_thousandth_reads_as_a_bound():
    v = {"verdict": "supported", "diff": 7.0, "p": 1e-5, "p_adjusted": 4e-5}
    assert claims.verdict_words(v) == "supported (Holm-adjusted p < 0.001)"
    assert claims.verdict_words({**v, "p_adjusted": 0.0228}) == "supported (Holm-adjusted p = 0.023)"
    # so do the one-test claims: §3.4's Kendall τ and the Kendall sentences
    conv = claims.conv_share_claim({"tau": 0.53, "p": 2e-6, "n": 34, "ci_low": 0.33, "ci_high": 0.69}, "cpu")
    assert "p < 0.001 (one test" in conv["verdict"] and "0.000" not in conv["verdict"]
    assert claims.kendall_words({"tau": 0.5, "p": 0.0123, "n": 9, "ci_low": None}, "x", "y").endswith(
        "p = 0.012 (n = 9)")


def test_markdown_escapes_pipes_and_has_one_row_per_claim():
    text = claims.markdown([{"claim": "a | b", "the paper": "p", "ours": "o", "scale": "s", "verdict": "v"}])
    assert text.splitlines()[2] == "| a \\| b | p | o | s | v |"


def test_collect_reads_the_committed_runs():
    from cpnas import comparison

    out = claims.collect("cpu")
    assert len(out) == 3 + 4 + 2 + 1 + 4 + 1 + 1 + 1
    assert out[-1]["verdict"].startswith("**supported** — within 0.0")  # WRN-22, analytic
    assert all(r["verdict"] == claims.NOT_MEASURED or r["verdict"].startswith("**") for r in out)
    assert table_runs.TABLE1_CLAIMS[0][3] in out[0]["claim"]
    if comparison.budget_state("cpu")["budget"] is None:  # every search claim waits for the budget
        searched = [r for r in out if "Imagenette" not in r["scale"] and "analytic" not in r["scale"]]
        assert searched and all(r["verdict"] == claims.NOT_MEASURED for r in searched)
        assert all("not chosen yet" in r["scale"] for r in searched)


def test_headline_claims_are_the_primary_beta_and_table3_rows_collect_writes():
    """The results at a glance pick their rows by claim: each headline claim must be one that collect writes."""
    from cpnas.comparison_plan import BETA_FAMILY, PRIMARY

    written = [r["claim"] for r in claims.collect("cpu")]
    headline = claims.headline_claims()
    assert len(headline) == len(PRIMARY) + len(BETA_FAMILY) + 1
    assert headline <= set(written)
    assert [c for c in written if c in headline][-1] == claims.TABLE3_CLAIM


def test_collect_judges_the_comparison_only_once_its_plan_is_in(monkeypatch):
    """Before the stopping rule is met a family's numbers are shown as interim, whatever its p; once every arm
    has the seeds the plan asks for (tight arms: the rule asks for no more), it gets its verdict."""
    from cpnas import comparison, comparison_tables

    def arms(n: int) -> dict[str, list[float]]:
        base = {"cpnas": 41.0, "rs": 35.5, "bnas": 40.0, "pcdarts": 39.0}
        return {"random": [30.0, 31.0, 32.0] * 4, **{a: [m - 0.5, m, m + 0.5] * (n // 3) for a, m in base.items()}}

    values, betas = arms(3), {1.0: [30.0, 31.0, 29.0]}
    monkeypatch.setattr(comparison, "budget_state", lambda scale: {"budget": "large", "reason": "τ > 0"})
    monkeypatch.setattr(comparison, "arm_values", lambda scale, budget: (values, {}))
    monkeypatch.setattr(comparison, "beta_values", lambda scale, budget: {2.0: values["cpnas"], **betas})
    monkeypatch.setattr(comparison, "conv_share_test", lambda scale, budget: {"n": 3, "tau": None})
    monkeypatch.setattr(comparison, "search_minutes_per_epoch", lambda scale, budget: {})
    monkeypatch.setattr(comparison_tables, "table1_rows", lambda scale, budget: [])
    monkeypatch.setattr(comparison_tables, "loss_rows", lambda scale, budget: [])
    random_claim = "Fig. 6 (right): CP-NAS beats random sampling (the benchmark's uniform cells)"
    beta_claim = "Fig. 6 (left): accuracy rises to β_P = 2 (β_P = 2 vs 1)"
    out = {r["claim"]: r for r in claims.collect("cpu")}
    row = out[random_claim]
    assert row["verdict"].startswith("**interim** — +10.00 points") and "`large` budget" in row["scale"]
    assert "stopping rule is met (it asks for 6 cells of CP-NAS, 6 of BNAS†, 6 of PC-DARTS" in row["verdict"]
    assert "supported" not in row["verdict"] and out[beta_claim]["verdict"].startswith("**interim")

    values = arms(6)  # every arm at its first seeds, each contrast's MDE below the limit: the rule is met
    assert comparison.seeds_to_add(values) == {}
    out = {r["claim"]: r for r in claims.collect("cpu")}
    assert out[random_claim]["verdict"].startswith("**supported")
    assert out[beta_claim]["verdict"].startswith("**interim") and "(5 cells of β_P = 1, 5 of β_P = 4;" in out[beta_claim]["verdict"]
    betas = {1.0: [30.0, 31.0, 29.0, 30.5, 29.5], 4.0: [38.0, 38.5, 37.5, 38.2, 37.8]}
    out = {r["claim"]: r for r in claims.collect("cpu")}
    assert out[beta_claim]["verdict"].startswith("**supported")


def test_results_page_claims_table_is_the_one_the_committed_runs_give():
    """docs/results.md's claims table is rendered from the committed runs, not edited by hand or left stale
    (``python tools/gen_docs.py --write`` after new runs land)."""
    import re

    page = (ROOT / "docs" / "results.md").read_text(encoding="utf-8")
    found = re.findall(r"<!-- gen:claims -->\n(.*?)\n<!-- /gen:claims -->", page, re.DOTALL)
    assert len(found) == 1, "docs/results.md needs one generated claims block"
    assert found[0].split("\n\n", 1)[-1] == claims.markdown(claims.collect("cpu")), \
        "docs/results.md's claims table is stale: run python tools/gen_docs.py --write"


def test_splice_replaces_only_the_table_and_needs_one_pair_of_markers():
    from cpnas.errors import CpnasError

    text = f"a\n{claims.README_START}\nold\n{claims.README_END}\nb\n"
    assert claims.splice(text, "new") == f"a\n{claims.README_START}\nnew\n{claims.README_END}\nb\n"
    assert claims.readme_table(claims.splice(text, "new")) == "new"
    with pytest.raises(CpnasError, match="exactly one"):
        claims.readme_table(text + claims.README_START)


def test_committed_table1_is_that_of_the_committed_runs():
    """tables/table1.csv is 03's output: the paper's rows, and ours from the comparison's Table 1 runs
    (:func:`cpnas.comparison_report.table1_metrics`) once they are trained."""
    from cpnas import comparison_report
    from cpnas.tables import table1

    committed = pd.read_csv(ROOT / "tables" / "table1.csv")
    now = table1(comparison_report.table1_metrics("cpu"))
    assert committed["architecture"].tolist() == now["architecture"].tolist()
    cols = ["architecture", "n", "test error (%)", "test error std (%)"]
    a = committed[committed["source"] == "ours"][cols].reset_index(drop=True)
    b = now[now["source"] == "ours"][cols].reset_index(drop=True)
    assert a["n"].tolist() == b["n"].astype(int).tolist()
    for c in cols[2:]:
        assert a[c].tolist() == pytest.approx(b[c].astype(float).tolist(), abs=0.01, nan_ok=True)  # n = 1: no std
