"""Tables 1 and 2: the paper's rows as data, ours beside the row they compare with, pure functions."""

from __future__ import annotations

import pytest

from cpnas.tables import (PAPER_SOURCE, PAPER_TABLE1, PAPER_TABLE2, TABLE1_COLUMNS, TABLE2_COLUMNS, table1,
                          table2)


def metrics(**kw):
    m = {"test_error": 41.234, "top1": 58.766, "top5": 95.5, "params_m": 0.1234, "weight_bits": 1,
         "activation_bits": 1, "scale": "cpu", "dataset_description": "CIFAR-10 (JPEG copy)", "epochs": 4,
         "channels": 8, "layers": 10, "image_size": 32, "train_images": 5000, "test_images": 2000,
         "precision": "binary", "loss": "cp", "kernel_source": "child",
         "paper_size": {"params_m": 2.456},
         "search": {"strategy": "cpnas", "cost": {"gpu_days": None, "wall_clock_h": 0.5, "epochs": 35,
                                                 "dataset": "CIFAR-10 (JPEG copy)", "device_name": "cpu"}}}
    m.update(kw)
    return m


def test_table1_paper_rows_are_the_papers():
    df = table1()
    assert tuple(df.columns) == TABLE1_COLUMNS
    assert list(df["architecture"]) == list(PAPER_TABLE1)
    assert set(df["source"]) == {PAPER_SOURCE}
    row = df.set_index("architecture").loc["CP-NAS (Medium)"]
    assert (row["test error (%)"], row["params (M)"], row["W"], row["A"], row["search cost (GPU days)"]) == \
        (5.72, 4.4, 1, 1, 0.1)
    assert df.set_index("architecture").loc["BNAS†", "test error (%)"] == 8.29
    assert df.set_index("architecture").loc["WRN-22", "search cost (GPU days)"] is None


def test_table1_places_ours_after_the_row_it_compares_with():
    ce = metrics(loss="ce", kernel_source=None, test_error=45.0)
    bnas = metrics(search={"strategy": "bnas", "cost": {"gpu_days": 0.01, "wall_clock_h": 0.3}})
    df = table1({"CP-NAS (Small)": metrics(), "BNAS†": bnas, "CP-NAS (Small), cross-entropy only": ce,
                 "something else": metrics()})
    names = list(df["architecture"])
    i = names.index("CP-NAS (Small)")
    assert names[i + 1:i + 4] == ["CP-NAS (Small)", "CP-NAS (Small), cross-entropy only", "CP-NAS (Medium)"]
    assert df.iloc[i]["source"] == PAPER_SOURCE and df.iloc[i + 1]["source"] == "ours"
    assert names[names.index("BNAS†") + 1] == "BNAS†"
    assert names[-1] == "something else" and df.iloc[-1]["compare with"] is None
    ours = df[df["source"] == "ours"].set_index("architecture")
    small = ours.loc["CP-NAS (Small)"]
    assert small["test error (%)"] == 41.23 and small["params (M)"] == 0.123
    assert small["params at paper size (M)"] == 2.456
    assert (small["scale"], small["dataset"], small["epochs"]) == ("cpu", "CIFAR-10 (JPEG copy)", 4)
    assert small["search method"] == "Child-Parent model" and small["search cost (GPU days)"] is None
    assert small["search wall-clock (h)"] == 0.5
    assert ours.loc["BNAS†", "search method"] == "Performance-based"
    assert ours.loc["BNAS†", "search cost (GPU days)"] == 0.01
    assert "loss ce" in ours.loc["CP-NAS (Small), cross-entropy only", "note"]


def test_table2_rows_and_dataset_label():
    df = table2({"CP-NAS*": metrics(dataset_description="Imagenette (10 ImageNet classes)", precision="binary*",
                                    top1=30.0, top5=80.0, paper_size={"params_m": 12.3})})
    assert tuple(df.columns) == TABLE2_COLUMNS
    names = list(df["architecture"])
    assert names[:len(PAPER_TABLE2) - 1] == list(PAPER_TABLE2)[:-1]
    i = names.index("CP-NAS*")
    assert df.iloc[i]["source"] == PAPER_SOURCE and df.iloc[i]["top-1 (%)"] == 64.3
    ours = df.iloc[i + 1]
    assert ours["source"] == "ours" and ours["top-1 (%)"] == 30.0 and ours["top-5 (%)"] == 80.0
    assert ours["dataset"] == "Imagenette (10 ImageNet classes)" and "ImageNet classes" in ours["note"]
    assert ours["params at paper size (M)"] == 12.3
    assert names[i + 2] == "CP-NAS**"


@pytest.mark.parametrize("fn", [table1, table2])
def test_tables_are_pure(fn):
    m = metrics()
    before = repr(m)
    a, b = fn({"CP-NAS (Small)": m}), fn({"CP-NAS (Small)": m})
    assert a.equals(b) and repr(m) == before


def test_a_row_of_seeds_gives_mean_std_and_n():
    runs = [metrics(test_error=40.0, seed=0, params_m=0.1), metrics(test_error=42.0, seed=1, params_m=0.2),
            metrics(test_error=44.0, seed=2, params_m=0.3)]
    df = table1({"CP-NAS (Small)": runs, "BNAS†": metrics(test_error=50.0)})
    ours = df[df["source"] == "ours"].set_index("architecture")
    small = ours.loc["CP-NAS (Small)"]
    assert (small["test error (%)"], small["test error std (%)"], small["n"]) == (42.0, 2.0, 3)
    assert small["params (M)"] == 0.2 and "seeds 0, 1, 2" in small["note"]
    one = ours.loc["BNAS†"]
    assert (one["test error (%)"], one["n"]) == (50.0, 1) and one["test error std (%)"] is None
    assert df[df["source"] != "ours"]["n"].isna().all()
    t2 = table2({"CP-NAS*": [metrics(top1=30.0, top5=80.0), metrics(top1=34.0, top5=82.0)]})
    row = t2[t2["source"] == "ours"].iloc[0]
    assert (row["top-1 (%)"], row["top-1 std (%)"], row["top-5 (%)"], row["n"]) == (32.0, 2.83, 81.0, 2)
    assert "(search and training)" in small["note"]  # the fixture's runs name no search folder
    one_cell = {"strategy": "cpnas", "out": "results/cpu/search/cpnas/seed0"}
    t2 = table2({"CP-NAS*": [metrics(top1=30.0, seed=0, search=one_cell), metrics(top1=34.0, seed=1, search=one_cell)]})
    note = t2[t2["source"] == "ours"].iloc[0]["note"]
    assert "seeds 0, 1 (training only: every seed trains the cell of results/cpu/search/cpnas/seed0)" in note
    # runs that name their search seeds (one found cell each, trained at training seed 0) say so
    searched = [metrics(test_error=40.0 + k, seed=0, search_seed=k) for k in (2, 0, 1)]
    df = table1({"CP-NAS (Small)": searched})
    (note,) = df[df["source"] == "ours"]["note"]
    assert "over search seeds 0, 1, 2 (each found cell trained once, training seed 0)" in note
    with pytest.raises(ValueError):
        table1({"CP-NAS (Small)": []})
