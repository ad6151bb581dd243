"""Where every run lives: the layout of ``results/<scale>/`` (:mod:`cpnas.runs`)."""

from __future__ import annotations

from pathlib import Path

from cpnas.data.registry import DEFAULT_DATASET
from cpnas.paths import results_dir


def study_dir(scale: str, study: str | None = None) -> Path:
    """``results/<scale>`` (the notebooks' runs) or ``results/<scale>/<study>`` (a study's own runs)."""
    root = results_dir(scale)
    return root if study is None else root / study


def search_name(strategy: str, beta_p: float | None = None, dataset: str = DEFAULT_DATASET,
                variant: str | None = None) -> str:
    """``<strategy>[-beta<β>][-<variant>]``, prefixed by ``<dataset>-`` off the default dataset."""
    name = strategy if beta_p is None else f"{strategy}-beta{beta_p:g}"
    if variant:
        name = f"{name}-{variant}"
    return name if dataset == DEFAULT_DATASET else f"{dataset}-{name}"


def search_dir(scale: str, strategy: str, seed: int, beta_p: float | None = None,
               dataset: str = DEFAULT_DATASET, *, study: str | None = None, variant: str | None = None) -> Path:
    """``results/<scale>[/<study>]/search/<search name>/seed<N>``."""
    return study_dir(scale, study) / "search" / search_name(strategy, beta_p, dataset, variant) / f"seed{seed}"


def stage_dir(scale: str, study: str | None = None, stage: str = "train") -> Path:
    """The folder holding one folder per training of a stage: ``results/<scale>[/<study>]/<stage>``."""
    return study_dir(scale, study) / stage


def train_dir(scale: str, name: str, seed: int, *, study: str | None = None, stage: str = "train") -> Path:
    """``results/<scale>[/<study>]/<stage>/<name>/seed<N>`` (``name`` may hold a ``/``: the proxy's cell/budget)."""
    return stage_dir(scale, study, stage) / name / f"seed{seed}"


def submitit_dir(scale: str) -> Path:
    """``results/<scale>/submitit``: logs of the runs sent through submitit (:mod:`cpnas.parallel`)."""
    return results_dir(scale) / "submitit"
