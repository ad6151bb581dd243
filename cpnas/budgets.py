"""Training budgets by name: numbers of two training budgets never share a name.

A trained network's *budget* is what its test accuracy depends on besides the architecture and the
recipe: epochs, training and test images, the held-out validation split, the image size and the
number of cells (:data:`BUDGET_FIELDS`, fields of the dataset's training section). The network's
width is its *size* (small, medium, large) and is named separately.

A run trained with exactly its scale's preset values has the scale's name (``cpu``). A run whose
budget differs from the preset gets a name of its own: an alias from :data:`ALIASES` where one is
registered (``cpu-study``: the first ablation study, one pass over 10,000 images, tested on 5,000),
else the scale with the fields that differ (``cpu[epochs=1]``). Tables, labels and ``metrics.json``
use that name, so a reader never mistakes a one-epoch number for a ``cpu``-budget one.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

BUDGET_FIELDS = ("epochs", "train_fraction", "test_fraction", "val_fraction", "image_size", "layers")
"""The training-section fields that make a training budget (what a run's test accuracy depends on,
besides the architecture, its width and the recipe)."""

ALIASES: dict[str, tuple[str, dict[str, Any]]] = {
    # The first ablation study (cpnas.ablation.ABLATION_SIZES): one pass over 10,000 training images,
    # tested on 5,000 (±0.7 points binomial SE at 50 %), no validation split.
    "cpu-study": ("cpu", {"epochs": 1, "train_fraction": 0.2, "test_fraction": 0.5, "val_fraction": 0.0}),
}
"""Short names of budgets used by a study: name → (scale, the fields that differ from its preset)."""


@functools.lru_cache(maxsize=None)
def _preset_fields(scale: str, dataset: str) -> tuple[tuple[str, Any], ...] | None:
    from cpnas.config import get_config
    from cpnas.data import train_config
    from cpnas.presets import SCALES

    if scale not in SCALES:
        return None
    t = train_config(get_config(scale), dataset)
    return tuple((f, getattr(t, f)) for f in BUDGET_FIELDS)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return abs(float(a) - float(b)) <= 1e-12 * max(1.0, abs(float(a)), abs(float(b)))
    return a == b


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def budget_name(scale: str, train: Mapping[str, Any], dataset: str = "cifar10") -> str:
    """The name of the training budget of a run at ``scale`` trained with the training section ``train``.

    ``train`` holds at least :data:`BUDGET_FIELDS` (a training config as a dict, as ``metrics.json``
    stores it under ``run.train``). Returns ``scale`` when they equal the preset's, the alias of
    :data:`ALIASES` that matches, else ``scale[field=value,...]`` listing the fields that differ.
    """
    fields = _preset_fields(scale, dataset)
    if fields is None:
        return scale
    preset = dict(fields)
    diff = {f: train[f] for f in BUDGET_FIELDS if f in train and not _same(train[f], preset[f])}
    if not diff:
        return scale
    for alias, (alias_scale, fields) in ALIASES.items():
        if alias_scale == scale and set(fields) >= set(diff) and all(
                _same(train.get(f, preset[f]), v) for f, v in fields.items()):
            return alias
    return f"{scale}[" + ",".join(f"{f}={_fmt(v)}" for f, v in diff.items()) + "]"


def budget_of_metrics(metrics: Mapping[str, Any]) -> str:
    """The budget name of a finished training run from its ``metrics.json``.

    Runs record it (``budget``); for runs that predate the field it is derived from the training
    section stored with the run's key (``run.train``). Without either, the scale's name.
    """
    if metrics.get("budget"):
        return str(metrics["budget"])
    scale = str(metrics.get("scale", "paper"))
    train = (metrics.get("run") or {}).get("train")
    if not train:
        return scale
    return budget_name(scale, train, str(metrics.get("dataset", "cifar10")))


def describe(name: str) -> str:
    """One line on a budget name, for tables' notes and the docs."""
    if name in ALIASES:
        scale, fields = ALIASES[name]
        return f"`{name}`: the `{scale}` preset with " + ", ".join(f"{f} = {_fmt(v)}" for f, v in fields.items())
    if "[" in name:
        scale, rest = name.split("[", 1)
        return f"`{name}`: the `{scale}` preset with " + rest.rstrip("]").replace(",", ", ").replace("=", " = ")
    return f"`{name}`: the `{name}` preset's training budget"
