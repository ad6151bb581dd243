"""cpnas.claims: the README's claim rows, each with one verdict computed from the runs."""

from pathlib import Path

import pandas as pd
import pytest

from cpnas import ablation, claims
from cpnas import stats, table_runs

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


def test_fig6_claims_cover_the_curve_both_readings_and_the_strategies():
    rows = (_rows("beta", "beta_p", {0.0: 30.0, 0.5: 31.0, 2.0: 40.0, 4.0: 41.0})
            + _rows("beta-gap", "beta_p", {0.5: 30.0, 2.0: 30.2})
            + _rows("strategy", "label", {"cpnas": 40.0, "random": 30.0, "pcdarts": 50.0, "bnas": 30.0}))
    out = {r["claim"]: r["verdict"] for r in claims.fig6_claims(rows, "cpu")}
    assert out["Fig. 6 (left): accuracy rises with β_P up to 2 (β_P = 2 vs 0, BNAS†)"].startswith("**supported")
    assert out["Fig. 6 (left): and falls beyond (β_P = 2 vs 4)"].startswith("**not resolved")
    assert out["Fig. 6 (left), Eq. 1 read as `printed`: β_P = 2 beats β_P = 0.5"].startswith("**supported")
    assert out["Fig. 6 (left), Eq. 1 read as `gap_penalty`: β_P = 2 beats β_P = 0.5"].startswith("**not resolved")
    assert out["Fig. 6 (right): CP-NAS beats pcdarts"].startswith("**contradicted")
    assert out["Fig. 6 (right): CP-NAS beats random"].startswith("**supported")


def test_conv_share_speed_table2_and_loss_claims():
    table = pd.DataFrame({"beta_p": [0.0] * 3 + [4.0] * 3, "conv share": [0.6, 0.62, 0.64, 0.4, 0.42, 0.44]})
    conv = claims.conv_share_claim(table, "cpu")
    assert conv["verdict"].startswith("**supported") and "62.00 ± 2.00 %" in conv["ours"]
    t2 = claims.table2_claim({0: 30.0, 1: 31.0, 2: 32.0}, {0: 40.0, 1: 41.0, 2: 42.0}, "cpu")
    assert t2["verdict"].startswith("**supported") and "paired" in t2["verdict"]
    # the same values with a seed missing on one side cannot pair: Welch's test
    assert "Welch" in claims.table2_claim({0: 30.0, 1: 31.0, 2: 32.0}, {0: 40.0, 1: 41.0}, "cpu")["verdict"]
    rows = [{"study": "strategy", "strategy": s, "search_wall_clock_s": sec, "search_epochs": 35 if s == "cpnas"
             else 10} for s, secs in (("cpnas", (350.0, 360.0, 370.0)), ("pcdarts", (300.0, 310.0, 320.0)))
            for sec in secs]
    speed = claims.speed_claim(rows, "cpu")  # 10.5 s vs 31 s per epoch: 18 min vs 26 min projected
    assert speed["verdict"].startswith("**supported") and " min" in speed["ours"]
    loss = _rows("loss", "label", {"CP loss (Eq. 4)": 40.0, "cross-entropy": 30.0, "+ center term": 40.1,
                                   "+ kernel term (H = Child)": 40.0})
    out = claims.loss_claims(loss, "cpu")
    assert [r["verdict"].split("**")[1] if "**" in r["verdict"] else r["verdict"] for r in out] == \
        ["supported", "not resolved", claims.NOT_MEASURED, "not resolved"]


def test_markdown_escapes_pipes_and_has_one_row_per_claim():
    text = claims.markdown([{"claim": "a | b", "the paper": "p", "ours": "o", "scale": "s", "verdict": "v"}])
    assert text.splitlines()[2] == "| a \\| b | p | o | s | v |"


def test_collect_reads_the_committed_runs():
    out = claims.collect("cpu")
    assert len(out) == 3 + 2 + 2 + 3 + 1 + 4 + 1 + 1 + 1
    assert out[-1]["verdict"].startswith("**supported** — within 0.0")  # WRN-22, analytic
    assert all(r["verdict"] == claims.NOT_MEASURED or r["verdict"].startswith("**") for r in out)
    assert table_runs.TABLE1_CLAIMS[0][3] in out[0]["claim"]


def test_the_fall_waits_for_the_largest_beta():
    rows = [{**r, "train_wall_clock_s": 60.0} for r in _rows("beta", "beta_p", {0.0: 30.0, 1.0: 35.0, 2.0: 40.0})]
    out = {r["claim"]: r["verdict"] for r in claims.fig6_claims(rows, "cpu")}
    assert out["Fig. 6 (left): and falls beyond (β_P = 2 vs 4)"] == claims.NOT_MEASURED
    assert claims.beta_verdict(rows).startswith("The β_P > 2 runs have not finished yet")


def test_results_page_claims_table_is_the_one_the_committed_runs_give():
    """docs/results.md's claims table is rendered from the committed runs, not edited by hand or left stale
    (``python tools/gen_docs.py --write`` after new runs land)."""
    import re

    page = (ROOT / "docs" / "results.md").read_text(encoding="utf-8")
    found = re.findall(r"<!-- gen:claims -->\n(.*?)\n<!-- /gen:claims -->", page, re.DOTALL)
    assert len(found) == 1, "docs/results.md needs one generated claims block"
    assert found[0] == claims.markdown(claims.collect("cpu")), \
        "docs/results.md's claims table is stale: run python tools/gen_docs.py --write"


def test_splice_replaces_only_the_table_and_needs_one_pair_of_markers():
    from cpnas.errors import CpnasError

    text = f"a\n{claims.README_START}\nold\n{claims.README_END}\nb\n"
    assert claims.splice(text, "new") == f"a\n{claims.README_START}\nnew\n{claims.README_END}\nb\n"
    assert claims.readme_table(claims.splice(text, "new")) == "new"
    with pytest.raises(CpnasError, match="exactly one"):
        claims.readme_table(text + claims.README_START)


def test_committed_fig6_tables_are_those_of_the_committed_runs():
    """tables/fig6_*.csv are 05's output from the runs in results/cpu (re-execute 05 after new runs land)."""
    from cpnas.tables import default_genotype_path

    runs = ablation.all_runs(default_genotype_path("cpu"), seeds=ablation.default_seeds("cpu"), betas=ablation.default_betas("cpu"),
                      loss_seeds=ablation.default_loss_seeds("cpu"))
    rows = ablation.load_rows(runs, "cpu")
    committed = pd.read_csv(ROOT / "tables" / "fig6_strategies.csv")
    now = stats.summarize(rows, "strategy").round(3)
    assert list(committed["label"]) == list(now["label"])
    assert list(committed["n"]) == list(now["n"])
    assert committed["top1 mean"].tolist() == pytest.approx(now["top1 mean"].tolist(), abs=1e-3)
    beta = pd.read_csv(ROOT / "tables" / "fig6_beta.csv")
    printed = beta[beta["reading"] == "printed"]
    now = stats.summarize(rows, "beta", by="beta_p").sort_values("beta_p").round(3)
    assert printed["n"].tolist() == now["n"].tolist()
    assert printed["top1 mean"].tolist() == pytest.approx(now["top1 mean"].tolist(), abs=1e-3)


def test_committed_table1_is_that_of_the_committed_runs():
    """tables/table1.csv's rows of ours are 03's output from the runs in results/cpu."""
    from cpnas.tables import table1

    committed = pd.read_csv(ROOT / "tables" / "table1.csv")
    now = table1(table_runs.table1_metrics(table_runs.table1_runs(table_runs.default_table1_seeds("cpu")), "cpu"))
    cols = ["architecture", "n", "test error (%)", "test error std (%)"]
    a = committed[committed["source"] == "ours"][cols].reset_index(drop=True)
    b = now[now["source"] == "ours"][cols].reset_index(drop=True)
    assert a["architecture"].tolist() == b["architecture"].tolist() and (a["n"] >= 3).all()
    assert a["n"].tolist() == b["n"].astype(int).tolist()
    for c in cols[2:]:
        assert a[c].tolist() == pytest.approx(b[c].astype(float).tolist(), abs=0.01)
