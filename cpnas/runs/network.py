"""The network a finished training holds, rebuilt from its run folder: the one way ``cpnas eval``,
``cpnas deploy`` and the trained Parent of the kernel term (``loss.kernel_source = parent``) get it.

A training folder's ``config.json`` is its run key (:func:`cpnas.runs.keys.run_key`): the genotype,
dataset, size, precision and the recipe section it trained with. The config is rebuilt from the
scale's preset with that recipe on top, so the network has the channels, cells and auxiliary tower
it was trained with, and the checkpoint's weights are loaded into it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cpnas.data.registry import DEFAULT_DATASET
from cpnas.errors import CpnasError
from cpnas.runs.files import CHECKPOINT, CONFIG, METRICS

if TYPE_CHECKING:
    from torch import nn

    from cpnas.config import Config, TrainConfig
    from cpnas.genotype import Genotype


def channels_of(tcfg: "TrainConfig", size: str) -> int:
    """The cell channels C of the ``size`` network (small, medium, large) in a training recipe."""
    from cpnas.efficiency import SIZES

    if size not in SIZES:
        raise CpnasError(f"unknown size {size!r}; choose one of {', '.join(SIZES)}")
    return getattr(tcfg, f"channels_{size}")


def build_network(genotype: Genotype, cfg: Config, *, dataset: str = DEFAULT_DATASET, size: str = "small",
                  precision: str = "binary", num_classes: int = 10) -> "nn.Module":
    """The evaluation network of ``genotype`` (§3.1) at ``size`` and ``precision``, on the current device.

    The network class is the one the dataset's registry entry names. The auxiliary
    tower is built when the recipe gives it a weight.
    """
    from cpnas import data
    from cpnas.binary import get_precision

    spec = data.get_dataset(dataset)
    tcfg = spec.train_config(cfg)
    C = channels_of(tcfg, size)
    net_cls = spec.network_class()
    try:
        return net_cls(genotype, C=C, num_classes=num_classes, layers=tcfg.layers,
                       auxiliary=tcfg.auxiliary_weight > 0, precision=get_precision(precision))
    except ValueError as exc:  # e.g. FactorizedReduce needs an even channel count
        raise CpnasError(f"cannot build the {dataset} network with C={C}, {tcfg.layers} cells: {exc}") from None


@dataclass(frozen=True)
class TrainedRun:
    """A training run folder as read back: its key (``config.json``), its ``metrics.json`` (``{}`` while
    unfinished) and the config it trained with."""

    folder: Path
    key: dict[str, Any]
    metrics: dict[str, Any]
    genotype: "Genotype"
    dataset: str
    size: str
    precision: str
    config: "Config"


def read_run(folder: str | os.PathLike) -> TrainedRun:
    """The training run in ``folder``; a folder without a training's ``config.json`` is one clear error."""
    from cpnas import data
    from cpnas.config import apply_overrides, get_config
    from cpnas.genotype import Genotype
    from cpnas.io import read_json

    folder = Path(folder)
    if not folder.is_dir():
        raise CpnasError(f"{folder}: no such run folder")
    key = read_json(folder / CONFIG)
    metrics = read_json(folder / METRICS) if (folder / METRICS).exists() else {}
    try:
        genotype = Genotype.from_dict(key["genotype"], source=str(folder / CONFIG))
        dataset, size, precision = key["dataset"], key["size"], key["precision"]
        spec = data.get_dataset(dataset)
        cfg = get_config(metrics.get("scale", "paper"))
        cfg = apply_overrides(cfg, {f"{spec.train_section}.{k}": (tuple(v) if isinstance(v, list) else v)
                                    for k, v in key["train"].items()})
        if key.get("data"):
            cfg = apply_overrides(cfg, {f"data.{k}": v for k, v in key["data"].items()})
    except (KeyError, TypeError) as exc:
        raise CpnasError(f"{folder / CONFIG} is not the config of a training run ({exc})") from None
    return TrainedRun(folder, key, metrics, genotype, dataset, size, precision, cfg)


def trained_network(run: TrainedRun | str | os.PathLike, *, checkpoint: str | os.PathLike | None = None,
                    num_classes: int | None = None) -> "nn.Module":
    """The network of a training run (a folder or :func:`read_run`'s result) with the weights of ``checkpoint``
    (default: the folder's ``checkpoint.pt``), on the CPU, in training mode as built.

    ``num_classes`` defaults to the run's ``metrics.json``, then the dataset's registry entry.
    """
    from cpnas import data
    from cpnas.io import load_checkpoint

    run = run if isinstance(run, TrainedRun) else read_run(run)
    ckpt = Path(checkpoint) if checkpoint is not None else run.folder / CHECKPOINT
    if not ckpt.is_file():
        raise CpnasError(f"{run.folder}: no {CHECKPOINT}; only a training run folder with its checkpoint can be "
                         f"rebuilt (checkpoints are not committed: train it with 'cpnas train' first)")
    state = load_checkpoint(ckpt)
    n = num_classes or run.metrics.get("num_classes") or data.get_dataset(run.dataset).num_classes
    model = build_network(run.genotype, run.config, dataset=run.dataset, size=run.size, precision=run.precision,
                          num_classes=n)
    try:
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError, TypeError, AttributeError) as exc:
        raise CpnasError(f"{ckpt} does not hold this run's network ({str(exc).splitlines()[0]})") from None
    return model
