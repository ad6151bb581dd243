"""The cache key of each stage of a run (:mod:`cpnas.runs`): what a finished folder must match to be loaded.

A search's key is :func:`search_key` of its config (its ``config.json`` holds the whole config; the
key is the sections a search reads); a training's is :func:`run_key` (its ``config.json`` and the
``run`` entry of its ``metrics.json`` hold it). A finished folder is loaded only when its stored key
equals the one asked for, and a checkpoint is resumed only then; so these two functions decide
which finished runs are found: changing what they return orphans every finished run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cpnas.config import Config
    from cpnas.genotype import Genotype


SEARCH_SECTIONS = ("search", "data")
"""The config sections a search depends on (training settings may change without invalidating it)."""


def search_key(config: dict[str, Any]) -> dict[str, Any]:
    """The part of a config dict (:meth:`cpnas.config.Config.to_dict`) a search's result depends on, as plain
    JSON values (tuples as lists, so a key read back from ``config.json`` compares equal)."""
    import json

    return json.loads(json.dumps({key: config.get(key) for key in SEARCH_SECTIONS}))


def run_key(genotype: "Genotype", cfg: "Config", *, dataset: str, size: str, seed: int, loss: str,
            precision: str) -> dict[str, Any]:
    """Everything a training run's result depends on, as plain JSON values.

    Only the sections training reads (the recipe of ``dataset``, the CP loss, the
    synthetic data sizes), so a change to the search presets does not orphan
    finished trainings; a checkpoint or a cached ``metrics.json`` is reused only
    when its key equals the current one.
    """
    import dataclasses
    import json

    from cpnas import data
    from cpnas.binary import get_precision

    key = {"genotype": genotype.to_dict(), "size": size, "dataset": dataset, "seed": seed, "loss": loss,
           "precision": get_precision(precision).name,
           "train": dataclasses.asdict(data.train_config(cfg, dataset)),
           "loss_config": dataclasses.asdict(cfg.loss) if loss == "cp" else None,
           "data": dataclasses.asdict(cfg.data) if data.get_dataset(dataset).generated else None}
    loader = data.get_dataset(dataset).loader_for(cfg)
    if loader != "memory":  # the streaming pipeline augments differently: its runs are other runs
        key["loader"] = loader  # (absent for in-memory runs, so the keys of finished runs stay as they were)
    return json.loads(json.dumps(key))  # tuples → lists: equal to what metrics.json holds
