"""The dataset registry: every entry is consistent, and a toy dataset flows through without other edits."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from cpnas import data
from cpnas.config import Config, get_config
from cpnas.errors import CpnasError
from cpnas.genotype import load_genotype


@pytest.fixture(autouse=True)
def _no_env(monkeypatch, tmp_path):
    for var in (*data.ENV_VARS.values(), data.CACHE_ENV, "CPNAS_TOY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(data.CACHE_ENV, str(tmp_path / "cache"))


@pytest.mark.parametrize("name", data.dataset_names())
def test_registry_entry_is_consistent(name, data_dir):
    from cpnas.evaluation import build_network

    spec = data.get_dataset(name)
    assert spec.name == name and spec.source in data.SOURCES
    assert spec.train_section in Config.__dataclass_fields__
    assert issubclass(spec.network_class(), nn.Module)
    cfg = get_config("smoke")
    assert data.train_config(cfg, name) is getattr(cfg, spec.train_section)
    for key, field in spec.search_overrides.items():
        assert key.split(".")[0] == "search" and hasattr(cfg, field)
    with torch.device("meta"):
        net = build_network(load_genotype(data_dir / "darts_v2.json"), cfg, dataset=name, num_classes=7)
    assert isinstance(net, spec.network_class())


@pytest.mark.parametrize("name", [n for n in data.dataset_names() if data.get_dataset(n).env_var])
def test_a_missing_folder_names_the_path_and_the_env_var(name, tmp_path, monkeypatch):
    spec = data.get_dataset(name)
    missing = tmp_path / "nowhere"
    with pytest.raises(CpnasError, match=spec.env_var) as err:
        data.resolve_root(name, missing)
    assert str(missing) in str(err.value) and spec.label in str(err.value)
    monkeypatch.setenv(spec.env_var, str(missing))
    with pytest.raises(CpnasError, match=f"environment variable {spec.env_var}"):
        data.load_images(name, "test")


def test_unknown_dataset_lists_the_registry():
    with pytest.raises(CpnasError, match="unknown dataset 'mnist'; choose one of " + ", ".join(data.dataset_names())):
        data.get_dataset("mnist")
    with pytest.raises(ValueError, match="already registered"):
        data.register_dataset(data.get_dataset("cifar10"))


# --------------------------------------------------------------------------- a toy dataset


TOY_CLASSES = ("circle", "square", "triangle")
TOY = {"cifar.layers": 3, "cifar.channels_small": 4, "cifar.image_size": 16, "cifar.batch_size": 8,
       "cifar.epochs": 1, "cifar.train_fraction": 1.0, "cifar.test_fraction": 1.0, "cifar.cutout": 4,
       "search.train_fraction": 0.5, "search.score_fraction": 0.25, "search.batch_size": 4}


def _write_toy(root: Path, per_class: dict[str, int]) -> Path:
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    for split, n in per_class.items():
        for k, cls in enumerate(TOY_CLASSES):
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                arr = (torch.rand(16, 16, 3, generator=g) * 80 + 60 * k).to(torch.uint8).numpy()
                Image.fromarray(arr).save(root / split / cls / f"{i}.png")
    return root


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """A new ImageFolder dataset: one registration, its folder named by its own environment variable."""
    spec = data.register_dataset(data.DatasetSpec(
        name="toy", label="Toy shapes", source="folder", env_var="CPNAS_TOY", classes=TOY_CLASSES,
        num_classes=3, train_section="cifar", network="NetworkCIFAR", native_size=16, test_dirs=("holdout",),
        layout_help="PATH/train/<shape>/*.png and PATH/holdout/<shape>/*.png."))
    monkeypatch.setenv("CPNAS_TOY", str(_write_toy(tmp_path / "toy", {"train": 8, "holdout": 4})))
    yield spec
    data.unregister_dataset("toy")
    assert "toy" not in data.dataset_names()


def test_a_toy_dataset_flows_through_loading_splits_loaders_and_networks(toy, data_dir):
    from cpnas.evaluation import _loaders, build_network
    from cpnas.runs import run_key
    from cpnas.search import search_data

    assert "toy" in data.DATASETS
    cfg = get_config("smoke", TOY)
    train = data.load_dataset(cfg, "toy", "train")
    test = data.load_dataset(cfg, "toy", "test")
    assert (len(train), len(test)) == (24, 12) and train.classes == list(TOY_CLASSES)
    assert train.images.shape[1:] == (3, 16, 16) and train.name == "toy"
    assert train.description == "Toy shapes (image-folder copy " + str(Path(data.resolve_root("toy"))) + ")"

    _, _, loader, test_loader, _ = _loaders(cfg, "toy", None, 0, torch.device("cpu"))
    x, y = next(iter(loader))
    assert x.shape == (8, 3, 16, 16) and y.max() < 3
    _, search_train, score, _, _ = search_data(cfg, "toy", None, 0, torch.device("cpu"))
    assert len(search_train.labels) == 12 and len(score.labels) == 6

    genotype = load_genotype(data_dir / "darts_v2.json")
    net = build_network(genotype, cfg, dataset="toy", num_classes=train.num_classes).eval()
    logits = net(x)
    assert (logits[0] if isinstance(logits, tuple) else logits).shape == (8, 3)
    assert run_key(genotype, cfg, dataset="toy", size="small", seed=0, loss="ce", precision="binary")["train"][
        "image_size"] == 16


def test_a_toy_dataset_trains_end_to_end(toy, data_dir, tmp_path):
    from cpnas.evaluation import train_genotype

    cfg = get_config("smoke", TOY)
    metrics = train_genotype(load_genotype(data_dir / "darts_v2.json"), cfg, out=tmp_path / "run", dataset="toy",
                             loss="ce", device="cpu")
    assert metrics["dataset"] == "toy" and metrics["num_classes"] == 3 and metrics["test_images"] == 12
    assert metrics["dataset_description"].startswith("Toy shapes") and metrics["image_size"] == 16


def test_a_toy_dataset_without_its_folder_names_its_env_var(toy, monkeypatch):
    monkeypatch.delenv("CPNAS_TOY")
    with pytest.raises(CpnasError, match="no Toy shapes folder given: pass --data PATH or set the environment "
                                         "variable CPNAS_TOY"):
        data.load_dataset(get_config("smoke", TOY), "toy", "train")
