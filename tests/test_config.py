"""Configuration: presets differ from the paper only in size fields; every value has a source."""

from __future__ import annotations

import dataclasses
import json

import pytest

from cpnas.config import apply_overrides, get_config, iter_fields, parse_override
from cpnas.errors import CpnasError
from cpnas.presets import DEFAULT_SCALE, PRESET_RECIPES, RECIPES, SCALES


def leaves(cfg) -> dict:
    return {key: (value, meta) for key, value, meta in iter_fields(cfg) if key != "scale"}


def test_scales():
    assert set(SCALES) == {"paper", "cpu", "smoke"}
    assert DEFAULT_SCALE == "cpu"
    for scale in SCALES:
        assert get_config(scale).scale == scale


@pytest.mark.parametrize("scale", ["cpu", "smoke"])
def test_presets_differ_from_paper_only_in_size_and_recipe_fields(scale):
    paper, preset = leaves(get_config("paper")), leaves(get_config(scale))
    assert paper.keys() == preset.keys()
    changed = {key for key in paper if paper[key][0] != preset[key][0]}
    assert changed, f"{scale} should be smaller than paper"
    other = sorted(key for key in changed if not (paper[key][1].get("size") or paper[key][1].get("recipe")))
    assert not other, f"{scale} changes fields that are neither size nor recipe fields: {other}"
    # every recipe field that differs comes from the scale's named recipe, nothing else
    recipe = RECIPES[PRESET_RECIPES[scale]]
    changed_recipe = {key for key in changed if paper[key][1].get("recipe") and not paper[key][1].get("size")}
    assert changed_recipe <= set(recipe), sorted(changed_recipe - set(recipe))


def test_recipes_touch_recipe_fields_only_and_cite_them():
    fields_ = leaves(get_config("paper"))
    for name, recipe in RECIPES.items():
        for key in recipe:
            assert fields_[key][1].get("recipe"), f"recipe {name} sets {key}, which is not a recipe field"
    assert RECIPES["paper"] == {}
    assert PRESET_RECIPES == {"paper": "paper", "cpu": "adam-bnn", "smoke": "adam-bnn"}
    from cpnas.presets import RECIPE_SOURCES

    assert set(RECIPE_SOURCES) == set(RECIPES) and all(v.strip() for v in RECIPE_SOURCES.values())


def test_cpnas_config_labels_recipe_fields(capsys):
    from cpnas.cli import main

    assert main(["config", "--scale", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "adam-bnn" in lines[0]
    opt = next(line for line in lines if line.startswith("cifar.optimizer"))
    assert "'adam'" in opt and "[recipe]" in opt and "Bi-Real" in opt


def test_paper_keeps_the_papers_recipe(capsys):
    from cpnas.cli import main

    c = get_config("paper")
    assert (c.search.optimizer, c.search.lr, c.search.weight_decay, c.search.binary_weight_decay) == \
        ("sgd", 0.025, 5e-4, 5e-4)
    assert (c.cifar.optimizer, c.cifar.lr, c.cifar.lr_schedule, c.cifar.binary_weight_decay, c.cifar.cutout) == \
        ("sgd", 0.025, "cosine_epoch", 3e-4, 16)
    assert c.loss.kernel_weight == 1.0
    assert main(["config", "--scale", "paper"]) == 0
    out = capsys.readouterr().out
    assert "cifar.optimizer" in out and "sgd" in out and "0.025" in out


def test_cpu_uses_the_adam_recipe():
    c = get_config("cpu")
    assert (c.search.optimizer, c.cifar.optimizer, c.cifar.binary_weight_decay) == ("adam", "adam", 0.0)


@pytest.mark.parametrize("key,value", [("search.indicator", "both"), ("search.final_cell", "top3"),
                                       ("cifar.optimizer", "lamb"), ("cifar.lr_schedule", "step"),
                                       ("loss.kernel_source", "teacher"), ("search.parent_relu", "maybe")])
def test_choices_are_enforced(key, value):
    with pytest.raises(CpnasError, match=key.replace(".", r"\.")):
        get_config("cpu", {key: value})


def test_search_loss_key_is_gone():
    with pytest.raises(CpnasError, match="unknown config key 'search.loss'"):
        get_config("cpu", {"search.loss": "cp"})


def test_every_field_has_a_source():
    missing = [key for key, (_, meta) in leaves(get_config("paper")).items()
               if not isinstance(meta.get("source"), str) or not meta["source"].strip()]
    assert not missing, f"fields without a 'source': {missing}"


def test_paper_values_are_those_of_section_3_1():
    cfg = get_config("paper")
    s = cfg.search
    assert (s.layers, s.init_channels, s.nodes, s.T, s.batch_size) == (6, 16, 4, 3, 512)
    assert (s.beta_p, s.lr, s.lr_min, s.momentum, s.weight_decay) == (2.0, 0.025, 0.0, 0.9, 5e-4)
    assert (s.train_fraction, s.score_fraction) == (0.5, 0.05)
    assert (cfg.imagenet_search_lr, cfg.imagenet_beta_p) == (0.05, 0.33)
    c = cfg.cifar
    assert (c.layers, c.channels_small, c.channels_medium, c.channels_large) == (10, 56, 72, 112)
    assert (c.epochs, c.batch_size, c.lr, c.momentum, c.weight_decay, c.grad_clip) == (600, 96, 0.025, 0.9, 3e-4, 5.0)
    i = cfg.imagenet
    assert (i.layers, i.channels_small, i.epochs, i.batch_size, i.lr, i.weight_decay, i.image_size) == \
        (10, 102, 250, 256, 0.05, 3e-5, 224)
    assert i.label_smoothing > 0 and c.label_smoothing == 0


def test_unknown_scale_and_keys():
    with pytest.raises(CpnasError, match="unknown scale 'huge'; choose one of paper, cpu, smoke"):
        get_config("huge")
    with pytest.raises(CpnasError, match="unknown config key 'search.nope'.*beta_p"):
        get_config("cpu", {"search.nope": 1})
    with pytest.raises(CpnasError, match="unknown config key 'optimizer.lr'"):
        get_config("cpu", {"optimizer.lr": 1})
    with pytest.raises(CpnasError, match="'seed' has no sub-keys"):
        get_config("cpu", {"seed.value": 1})
    with pytest.raises(CpnasError, match="is a section"):
        get_config("cpu", {"search": 1})


@pytest.mark.parametrize("key,value", [
    ("search.T", "three"), ("search.T", "2.5"), ("search.T", 2.5), ("search.beta_p", "high"),
    ("search.final_cell", 2), ("search.reduction_layers", "1,x"), ("seed", None),
])
def test_wrong_types_raise(key, value):
    with pytest.raises(CpnasError, match=f"config key '{key}' expects a"):
        get_config("cpu", {key: value})


@pytest.mark.parametrize("key,value,expected", [
    ("search.T", "2", 2), ("search.beta_p", "0.5", 0.5), ("search.beta_p", 1, 1.0),
    ("search.reduction_layers", "2,3", (2, 3)), ("search.reduction_layers", "(1, 3)", (1, 3)),
    ("search.reduction_layers", [2, 3], (2, 3)), ("search.final_cell", "top2", "top2"),
])
def test_overrides_coerce_to_the_field_type(key, value, expected):
    cfg = get_config("smoke", {key: value})
    section, _, name = key.partition(".")
    got = getattr(getattr(cfg, section), name)
    assert got == expected and type(got) is type(expected)
    # other fields keep the preset's value
    assert cfg.search.init_channels == get_config("smoke").search.init_channels


def test_overrides_apply_after_the_preset():
    cfg = apply_overrides(get_config("cpu"), {"cifar.epochs": "3", "seed": "7"})
    assert (cfg.cifar.epochs, cfg.seed, cfg.scale) == (3, 7, "cpu")


def test_parse_override():
    assert parse_override("search.T=2") == ("search.T", "2")
    assert parse_override(" seed = 3 ") == ("seed", "3")
    with pytest.raises(CpnasError, match="key=value"):
        parse_override("search.T")
    with pytest.raises(CpnasError, match="key=value"):
        parse_override("=2")


def test_config_is_frozen():
    cfg = get_config("cpu")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.search.T = 1
    assert get_config("cpu") == cfg  # nothing shared was mutated


def test_to_json_round_trips_the_values():
    cfg = get_config("smoke")
    d = json.loads(cfg.to_json())
    assert d["scale"] == "smoke" and d["search"]["T"] == cfg.search.T
    assert d["search"]["reduction_layers"] == list(cfg.search.reduction_layers)


@pytest.mark.parametrize("key, value, message", [
    ("search.T", 0, "≥ 1"), ("search.init_channels", 0, "≥ 1"), ("search.layers", -1, "≥ 1"),
    ("search.reduction_layers", "9", "outside"), ("search.reduction_layers", "1,1", "repeats"),
    ("search.final_cell", "bogus", "one of"), ("search.nodes", 7, "one of"), ("cifar.epochs", -1, "≥ 1"),
    ("seed", 99999999999999999999, "< 9223372036854775808"), ("search.score_fraction", 1.5, "≤ 1"),
    ("cifar.train_fraction", 0, "> 0"), ("search.batch_size", 0, "≥ 1"), ("cifar.val_fraction", 1.0, "< 1"),
    ("search.pc_warmup_epochs", 99, "exceeds"), ("imagenet.channels_small", 0, "≥ 1"),
])
def test_out_of_range_values_are_refused_when_parsed(key, value, message):
    """Every range is checked when the config is built (before any data loads): one CpnasError line."""
    with pytest.raises(CpnasError, match=message) as exc:
        get_config("cpu", {key: value})
    assert "\n" not in str(exc.value)


def test_every_preset_is_within_range():
    from cpnas.config import _range_error, iter_fields
    from cpnas.presets import SCALES

    for scale in SCALES:
        for key, value, meta in iter_fields(get_config(scale)):
            assert not _range_error(value, meta.get("bounds") or {}), (scale, key, value)


def test_cli_refuses_a_seed_torch_cannot_take(capsys):
    from cpnas.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["search", "--out", "x", "--seed", "99999999999999999999"])
    assert exc.value.code == 2 and "0…2⁶³−1" in capsys.readouterr().err


# --- one order of resolution: the preset, the dataset's search settings (§3.1), the user's --set last ----------


def test_the_users_set_wins_over_the_datasets_search_settings(capsys):
    from cpnas.cli import main

    assert main(["search", "--scale", "cpu", "--dataset", "imagenet", "--set", "search.lr=0.01", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out[out.index("{"):])["search"]["lr"] == 0.01 and "β_P 0.33" in out
    assert main(["search", "--scale", "cpu", "--dataset", "imagenet", "--set", "search.beta_p=0.5", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "β_P 0.5" in out and json.loads(out[out.index("{"):])["search"]["lr"] == 0.05  # §3.1's ImageNet lr


def test_get_config_resolves_a_dataset_in_one_order():
    from cpnas.config import get_config
    from cpnas.data.registry import config_for

    cfg = config_for("cpu", dataset="imagenet")
    assert (cfg.search.lr, cfg.search.beta_p) == (cfg.imagenet_search_lr, cfg.imagenet_beta_p) == (0.05, 0.33)
    cfg = config_for("cpu", {"search.lr": "0.01", "imagenet_beta_p": "0.4"}, dataset="imagenet")
    assert (cfg.search.lr, cfg.search.beta_p) == (0.01, 0.4)
    assert config_for("cpu", dataset="cifar10").search == get_config("cpu").search  # CIFAR-10 changes nothing


def test_the_library_search_resolves_the_dataset_as_the_cli_does(monkeypatch):
    """run_search applies the dataset's search settings, except those the caller set (it never used to)."""
    from cpnas import search
    from cpnas.config import get_config
    from cpnas.data.registry import config_for, for_dataset

    cli = config_for("cpu", dataset="imagenet")
    assert for_dataset(get_config("cpu"), "imagenet") == cli
    assert for_dataset(cli, "imagenet") is cli
    mine = for_dataset(get_config("cpu", {"search.lr": "0.01"}), "imagenet")
    assert (mine.search.lr, mine.search.beta_p) == (0.01, 0.33)

    seen = {}

    def stop(cfg, *a, **k):
        seen["cfg"] = cfg
        raise CpnasError("stop")

    monkeypatch.setattr(search, "search_data", stop)
    with pytest.raises(CpnasError, match="stop"):
        search.run_search("cpnas", get_config("smoke"), dataset="imagenet", out=None, device="cpu")
    assert (seen["cfg"].search.lr, seen["cfg"].search.beta_p) == (0.05, 0.33)


def test_cpnas_config_shows_the_resolved_values_and_their_origin(capsys):
    from cpnas.cli import main

    assert main(["config", "--dataset", "imagenet", "--set", "search.lr=0.01"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if not line.startswith("#")}
    assert "0.01" in lines["search.lr"] and "[--set]" in lines["search.lr"]
    assert "0.33" in lines["search.beta_p"] and "[dataset]" in lines["search.beta_p"]
    assert "not used" in lines["search.pc_lr"] and "search.lr" in lines["search.pc_lr"]  # Adam: PC-DARTS uses search.lr
    assert main(["config", "--scale", "paper"]) == 0  # under §3.1's SGD, pc_lr is what PC-DARTS uses
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if not line.startswith("#")}
    assert "not used" not in lines["search.pc_lr"]


def test_the_resolution_marker_is_not_a_set_key():
    from cpnas.config import get_config

    with pytest.raises(CpnasError, match="--dataset"):
        get_config("cpu", {"search_dataset": "imagenet"})


def test_train_help_describes_the_default_recipe(capsys):
    from cpnas.cli import main
    from cpnas.presets import DEFAULT_SCALE, PRESET_RECIPES

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    recipe = PRESET_RECIPES[DEFAULT_SCALE]
    assert f"The default scale, {DEFAULT_SCALE}, trains with the recipe '{recipe}'" in text
    assert "adam" in text.split(f"'{recipe}'")[1].split(".")[0]


def test_a_strategys_own_section_serializes_where_committed_runs_have_it():
    """PC-DARTS's settings are its own section, and a run's config.json still holds them under ``search``:
    every committed search's configuration has exactly the keys a configuration has now."""
    from cpnas import ranking
    from cpnas.paths import project_root
    from cpnas.pcdarts import PCDartsSettings

    stored = {p.parent.parent.name.removeprefix("pcdarts-"): json.loads(p.read_text())["config"]
              for p in sorted(project_root().glob("results/cpu/ranking/search/pcdarts-*/seed0/config.json"))}
    assert stored, "no committed PC-DARTS search"
    for budget, config in stored.items():  # the ranking's searches: the cpu preset with their budget's sizes
        now = ranking.search_config("cpu", ranking.RankSearch("pcdarts", budget)).to_dict()
        assert set(config["search"]) == set(now["search"])
        assert {k: config["search"][k] for k in ("pc_epochs", "pc_partial_k")} == \
            {k: now["search"][k] for k in ("pc_epochs", "pc_partial_k")}
    assert "pc_epochs" not in {f.name for f in dataclasses.fields(get_config("cpu").search)}
    assert get_config("cpu", {"search.pc_epochs": 4}).section(PCDartsSettings).pc_epochs == 4
