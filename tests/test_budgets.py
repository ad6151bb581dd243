"""Training budgets by name (cpnas.budgets): one name per budget, derived alike for old and new runs."""

import dataclasses

import pytest

from cpnas import budgets
from cpnas.ablation import ablation_config
from cpnas.config import get_config
from cpnas.data import train_config


def _train(cfg, dataset="cifar10"):
    return dataclasses.asdict(train_config(cfg, dataset))


@pytest.mark.parametrize("scale", ["paper", "cpu", "smoke"])
def test_a_preset_budget_has_its_scale_name(scale):
    assert budgets.budget_name(scale, _train(get_config(scale))) == scale


def test_a_changed_size_or_recipe_field_outside_the_budget_keeps_the_name():
    cfg = get_config("cpu", {"cifar.channels_small": 8, "cifar.lr": 0.05, "cifar.batch_size": 64})
    assert budgets.budget_name("cpu", _train(cfg)) == "cpu"


def test_the_first_ablation_study_trains_at_the_cpu_study_budget():
    assert budgets.budget_name("cpu", _train(ablation_config("cpu"))) == "cpu-study"


def test_a_budget_without_an_alias_lists_the_fields_that_differ():
    name = budgets.budget_name("cpu", _train(get_config("cpu", {"cifar.epochs": 1, "cifar.test_fraction": 0.5})))
    assert name == "cpu[epochs=1,test_fraction=0.5]"
    assert "epochs = 1" in budgets.describe(name) and "`cpu` preset" in budgets.describe(name)
    assert "train_fraction = 0.2" in budgets.describe("cpu-study")


def test_an_alias_matches_only_its_own_budget():
    cfg = ablation_config("cpu", {"cifar.epochs": 2})
    assert budgets.budget_name("cpu", _train(cfg)).startswith("cpu[")


def test_the_budget_of_a_run_is_read_or_derived_from_its_key():
    key_train = _train(ablation_config("cpu"))
    old = {"scale": "cpu", "dataset": "cifar10", "run": {"train": key_train}}
    assert budgets.budget_of_metrics(old) == "cpu-study"
    assert budgets.budget_of_metrics({**old, "budget": "cpu"}) == "cpu"
    assert budgets.budget_of_metrics({"scale": "smoke"}) == "smoke"


def test_table_rows_name_the_budget_not_the_scale():
    from cpnas import tables

    m = {"dataset_description": "CIFAR-10", "scale": "cpu", "dataset": "cifar10", "channels": 12, "layers": 8,
         "image_size": 32, "epochs": 1, "train_images": 10000, "test_images": 5000, "precision": "binary",
         "loss": "cp", "params_m": 0.1, "weight_bits": 1, "activation_bits": 1,
         "run": {"train": _train(ablation_config("cpu"))}}
    row = tables._ours_common("CP-NAS (Small)", [m], None)
    assert row["scale"] == "cpu-study" and "cpu-study budget" in row["note"]
