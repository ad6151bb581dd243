"""Ablations: the β_P sweep and the search-strategy comparison of §3.4 (Fig. 6), and the CP loss.

Three studies, each a list of cached runs (search → train), every one stored under
``results/<scale>/ablation/`` so that a run recomputes only what is missing and an
interrupted sweep resumes where it stopped. At ``cpu`` the reproduced Fig. 6, Table 1
and CP-loss results come from the strategy comparison (:mod:`cpnas.comparison`,
:mod:`cpnas.comparison_tables`), which reuses this module's loss variants; these
studies remain for other scales and budgets (``paper`` on Slurm, ``docs/scaling-out.md``):

* :func:`beta_runs` — Fig. 6 (left): the ``cpnas`` search at β_P ∈ :data:`BETAS`
  (β_P = 0 is BNAS†, run as the ``bnas`` strategy, which skips the unused Parent;
  ``tests/test_search.py`` checks it equals ``cpnas`` with β_P = 0), each found
  cell trained the same way.
* :func:`strategy_runs` — Fig. 6 (right): ``random``, ``pcdarts``, ``bnas`` and
  ``cpnas`` on the same 1-bit space, with each search's measured wall-clock.
  ``bnas`` and ``cpnas`` (β_P = 2, the paper's CIFAR value) are the same runs as
  the β_P = 0 and β_P = 2 points of the sweep.
* :func:`loss_runs` — beyond the paper: one architecture (the genotype of
  ``02_search_cifar``) trained with cross-entropy only, + the kernel term (H = the
  Child's latent weights, or the trained Parent's filters), + the center term,
  and the full CP loss (Eq. 3-4).

The searches and trainings of the ablation are sized by :data:`ABLATION_SIZES`
(size fields only, like the presets): at the ``paper`` scale they are the
paper's; at ``cpu`` they are cut so that all three studies at 3 seeds fit in
about three hours on a 2-core CPU. The runs are :class:`cpnas.runs.RunSpec` values
(:func:`specs`); :func:`cpnas.runs.run_all` computes the missing ones in parallel worker
processes, and :func:`load_rows` turns the finished ones into the rows the figures and tables
read. From the command line (``--jobs`` workers)::

    python -m cpnas.ablation --scale cpu --jobs 2
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from cpnas.budgets import budget_of_metrics
from cpnas.config import Config, get_config
from cpnas.data.registry import DEFAULT_DATASET
from cpnas.errors import CpnasError
from cpnas.runs import (GENOTYPE, SEARCH, TRAIN, RunSpec, SearchSpec, first_per_key, overrides, search_name,
                        study_dir)
from cpnas.strategy_base import search_for_beta

BETAS: tuple[float, ...] = (0.0, 0.33, 0.5, 1.0, 2.0, 3.0, 4.0)
"""Fig. 6 (left): the β_P values of the sweep."""

STRATEGIES: tuple[str, ...] = ("random", "pcdarts", "bnas", "cpnas")
"""Fig. 6 (right): the search strategies compared on the 1-bit space."""

PAPER_STRATEGY = "cpnas"
"""The paper's method: the reference each other strategy of Fig. 6 (right) is compared with."""

SPEED_CLAIM: tuple[str, str] = ("cpnas", "pcdarts")
"""§3.2's speed claim: the strategy said to search faster, and the one it is compared with."""

GAP_BETAS: tuple[float, ...] = (0.5, 2.0)
"""Fig. 6 (left), the other reading of Eq. 1 (⚑ ``search.indicator = gap_penalty``): these β_P only."""

PAPER_BETA = 2.0
"""§3.1: β_P = 2 on CIFAR-10 (the ``cpnas`` point of the strategy study)."""

LOSS_KERNEL_WEIGHT = 0.03
"""The kernel term's weight in the loss study when the scale's recipe turns the term off (``adam-bnn``: 0):
the non-zero weight with the best validation top-1 in the recipe sweep (tables/recipe_sweep.md), so that
the variants with the kernel term measure it. At ``paper`` the recipe's weight (1, Eq. 3) is used."""

LOSS_VARIANTS: dict[str, dict[str, Any]] = {
    "cross-entropy": {"loss": "ce", "overrides": {}},
    "+ kernel term (H = Child)": {"loss": "cp", "overrides": {"loss.center_lambda": 0.0,
                                                             "loss.kernel_source": "child"}},
    "+ kernel term (H = Parent)": {"loss": "cp", "overrides": {"loss.center_lambda": 0.0,
                                                              "loss.kernel_source": "parent"}},
    "+ center term": {"loss": "cp", "overrides": {"loss.kernel_weight": 0.0}},
    "CP loss (Eq. 4)": {"loss": "cp", "overrides": {}},
}
"""The CP-loss ablation: name → training loss and ``loss.*`` overrides (λ and H otherwise the defaults)."""

LOSS_STUDIES: dict[str, str] = {
    "loss": "the CP-NAS cell of 02_search_cifar",
    "loss-bnas": "the BNAS† cell of this ablation's β_P = 0 search, seed 0",
}
"""The CP-loss studies: the same variants on two cells. 02's CP-NAS cell hardly trains at `cpu` budgets
(Table 1), so the variants are also compared on a cell that does."""

SEEDS: tuple[int, ...] = (0, 1, 2, 3, 4)
"""Seeds of Fig. 6's studies (at least 5); the smoke scale uses two (the fewest giving a std)."""

LOSS_SEEDS: tuple[int, ...] = (0, 1, 2)
"""Seeds of the CP-loss ablation (3)."""


def slug(text: str) -> str:
    """``text`` as a folder name: lower case, every run of other characters than letters and digits one ``-``."""
    return "-".join(filter(None, "".join(ch if ch.isalnum() else "-" for ch in text.lower()).split("-")))


def loss_overrides(scale: str, loss: str, variant: dict[str, Any]) -> dict[str, Any]:
    """A loss variant's ``loss.*`` overrides at ``scale``: where the scale's recipe turns the kernel term
    off (weight 0), a CP-loss variant that keeps the term gets :data:`LOSS_KERNEL_WEIGHT`, so it is measured."""
    out = dict(variant)
    if loss == "cp" and "loss.kernel_weight" not in out and get_config(scale).loss.kernel_weight == 0:
        out["loss.kernel_weight"] = LOSS_KERNEL_WEIGHT
    return out


def default_seeds(scale: str) -> tuple[int, ...]:
    """:data:`SEEDS`, or ``(0, 1)`` at the smoke scale (CI time)."""
    return SEEDS[:2] if scale == "smoke" else SEEDS


def default_loss_seeds(scale: str) -> tuple[int, ...]:
    """:data:`LOSS_SEEDS`, or ``(0, 1)`` at the smoke scale."""
    return LOSS_SEEDS[:2] if scale == "smoke" else LOSS_SEEDS


def default_betas(scale: str) -> tuple[float, ...]:
    """:data:`BETAS`, or four of them (0, 0.5, 2, 4) at the smoke scale (CI time; the code path is the same)."""
    return (0.0, 0.5, 2.0, 4.0) if scale == "smoke" else BETAS

ABLATION_SIZES: dict[str, dict[str, Any]] = {
    "paper": {},
    "smoke": {},
    # Sized so that the whole `make reproduce` fits 8 hours of two one-thread runs side by
    # side, and Table 1 at 3 seeds (which shares these searches, cpnas.tables.table1_runs) 90 minutes:
    # 48 searches and ~90 trainings in all. Search: a 5-cell supernet (C = 8) with the cpu schedule
    # (T = 1, 35 draws), each draw trained on the 250 search-train images and scored on 1,000
    # images after BN is re-estimated on 2 batches. Its snr
    # (indicator.json) is below 02's (10,000 scored images): these searches are noisier, and 05
    # reports how much. Training: the cpu small network (8 cells, C = 12) for one pass over
    # 10,000 training images (tested on 5,000, ±0.7 points binomial SE at 50 %).
    "cpu": {
        "search.layers": 5, "search.train_fraction": 0.005, "search.score_fraction": 0.02,
        "search.calibration_batches": 2,
        "cifar.epochs": 1, "cifar.train_fraction": 0.2, "cifar.test_fraction": 0.5, "cifar.val_fraction": 0.0,
        "cifar.eval_every": 1,
    },
}
"""Size overrides of the ablation runs on top of the scale's preset (size fields only; tested)."""


def ablation_config(scale: str, overrides: dict[str, Any] | None = None) -> Config:
    """The configuration of every ablation run at ``scale``: the preset plus :data:`ABLATION_SIZES`."""
    if scale not in ABLATION_SIZES:
        raise CpnasError(f"unknown scale {scale!r}; choose one of {', '.join(ABLATION_SIZES)}")
    return get_config(scale, {**ABLATION_SIZES[scale], **(overrides or {})})


STUDY = "ablation"
"""The ablation's folder in the results layout (:mod:`cpnas.runs`)."""


def ablation_dir(scale: str) -> Path:
    """``results/<scale>/ablation``: every search and training of the ablation lives below it."""
    return study_dir(scale, STUDY)


@dataclass(frozen=True)
class Run:
    """One run of a study: its place in the study's figure (``study``, ``label``) and what it runs, a search
    (unless ``genotype`` is given) followed by one training (:meth:`spec`, a :class:`cpnas.runs.RunSpec`)."""

    study: str  # "beta", "strategy", or a loss study: "loss" (02's cell) or "loss-bnas" (a BNAS† cell)
    label: str  # the x value of its figure: β_P, the strategy name, or the loss variant
    seed: int
    strategy: str = "cpnas"
    beta_p: float | None = None
    loss: str = "cp"
    loss_overrides: tuple[tuple[str, Any], ...] = ()
    genotype: str | None = None  # path to a fixed genotype (loss study): no search
    indicator: str = "printed"  # Eq. 1's reading (search.indicator); "gap_penalty" runs are the "beta-gap" study
    size: str = "small"  # the trained network's size (Table 1's rows train medium and large ones too)
    name: str | None = None  # the training's folder name (default: the search's name, or the loss study's)

    @property
    def variant(self) -> str | None:
        return None if self.indicator == "printed" else "gap"

    @property
    def search_name(self) -> str | None:
        if self.genotype is not None:
            return None
        return search_name(self.strategy, self.beta_p, variant=self.variant)

    @property
    def train_name(self) -> str:
        if self.name is not None:
            return self.name
        if self.study in LOSS_STUDIES:
            return f"{self.study}-{slug(self.label)}"
        return f"{self.search_name}"

    def spec(self, scale: str, dataset: str = DEFAULT_DATASET,
             config_overrides: dict[str, Any] | None = None) -> RunSpec:
        """The run as a :class:`cpnas.runs.RunSpec`: the ablation's sizes (:func:`ablation_config`), its loss."""
        if scale not in ABLATION_SIZES:
            raise CpnasError(f"unknown scale {scale!r}; choose one of {', '.join(ABLATION_SIZES)}")
        method = {} if self.indicator == "printed" else {"search.indicator": self.indicator}
        if self.study in LOSS_STUDIES:
            method.update(loss_overrides(scale, self.loss, dict(self.loss_overrides)))
        over = overrides({**ABLATION_SIZES[scale], **(config_overrides or {}), **dict(self.loss_overrides),
                            **method})
        search = None if self.genotype is not None else SearchSpec(
            self.strategy, seed=self.seed, beta_p=self.beta_p, dataset=dataset, overrides=over, study=STUDY,
            variant=self.variant)
        return RunSpec(self.train_name, seed=self.seed, search=search, genotype=self.genotype, size=self.size,
                         loss=self.loss, dataset=dataset, overrides=over, study=STUDY)

    def search_dir(self, scale: str, dataset: str = DEFAULT_DATASET) -> Path | None:
        spec = self.spec(scale, dataset)
        return None if spec.search is None else spec.search.out(scale)

    def train_dir(self, scale: str) -> Path:
        return self.spec(scale).out(scale)


def _search_run(strategy: str, seed: int, beta: float | None, study: str, label: str) -> Run:
    return Run(study=study, label=label, seed=seed, strategy=strategy, beta_p=beta)


def beta_runs(seeds: Sequence[int] = SEEDS, betas: Sequence[float] = BETAS) -> list[Run]:
    """Fig. 6 (left). β_P = 0 is the ``bnas`` search; β_P = 2 is the plain ``cpnas`` search (shared with Fig. 6 right)."""
    runs = []
    for beta in betas:
        strategy, b = search_for_beta(beta)
        for seed in seeds:
            runs.append(_search_run(strategy, seed, None if b == PAPER_BETA else b, "beta", f"{beta:g}"))
    return runs


def gap_runs(seeds: Sequence[int] = SEEDS, betas: Sequence[float] = GAP_BETAS) -> list[Run]:
    """Fig. 6 (left), study ``beta-gap``: the cpnas search under the ``gap_penalty`` reading of Eq. 1."""
    return [Run(study="beta-gap", label=f"{beta:g}", seed=seed, strategy="cpnas", beta_p=beta,
                indicator="gap_penalty") for beta in betas for seed in seeds]


def strategy_runs(seeds: Sequence[int] = SEEDS, strategies: Sequence[str] = STRATEGIES) -> list[Run]:
    """Fig. 6 (right): every strategy at the paper's β_P (cpnas) on the same space."""
    return [_search_run(s, seed, None, "strategy", s) for s in strategies for seed in seeds]


def loss_runs(genotype: str | os.PathLike, seeds: Sequence[int] = SEEDS,
              variants: Iterable[str] = tuple(LOSS_VARIANTS), study: str = "loss") -> list[Run]:
    """The CP-loss ablation on one fixed genotype (a path to its JSON), as study ``study`` of :data:`LOSS_STUDIES`."""
    if study not in LOSS_STUDIES:
        raise CpnasError(f"unknown loss study {study!r}; choose from {', '.join(LOSS_STUDIES)}")
    runs = []
    for name in variants:
        if name not in LOSS_VARIANTS:
            raise CpnasError(f"unknown loss variant {name!r}; choose from {', '.join(LOSS_VARIANTS)}")
        spec = LOSS_VARIANTS[name]
        for seed in seeds:
            runs.append(Run(study=study, label=name, seed=seed, loss=spec["loss"],
                            loss_overrides=tuple(sorted(spec["overrides"].items())), genotype=str(genotype)))
    return runs


def row(run: Run, metrics: dict[str, Any], search: Any = None) -> dict[str, Any]:
    """The flat result of one run: what the figures and tables of 05 read."""
    cost = search.cost if search is not None else None
    return {
        "study": run.study, "label": run.label, "seed": run.seed, "strategy": run.strategy if run.genotype is None
        else None, "beta_p": beta_of(run), "loss": run.label if run.study in LOSS_STUDIES else metrics.get("loss"),
        "top1": metrics["top1"], "test_error": metrics["test_error"],
        "genotype": json.dumps(metrics["genotype"], sort_keys=True),
        "train_wall_clock_s": metrics["wall_clock_s"],
        "search_wall_clock_s": cost["wall_clock_s"] if cost else None,
        "search_epochs": cost["epochs"] if cost else None,
        "params_m": metrics["params_m"], "train_images": metrics["train_images"],
        "test_images": metrics["test_images"], "epochs": metrics["epochs"], "device": metrics["device"],
        "scale": metrics["scale"], "budget": budget_of_metrics(metrics), "dataset": metrics["dataset_description"],
        "train_dir": str(run.train_dir(metrics["scale"])),
    }


def beta_of(run: Run) -> float | None:
    from cpnas.strategy_base import get_strategy

    if run.genotype is not None:
        return None
    cls = get_strategy(run.strategy)
    if cls.fixed_beta_p is not None:
        return cls.fixed_beta_p
    if not cls.uses_beta_p:
        return None
    return run.beta_p if run.beta_p is not None else PAPER_BETA


def load_rows(runs: Sequence[Run], scale: str, dataset: str = DEFAULT_DATASET) -> list[dict[str, Any]]:
    """The rows (:func:`row`) of the finished runs of ``runs``, in order; unfinished ones are left out."""
    rows = []
    for run in runs:
        folder = run.train_dir(scale)
        if TRAIN.is_finished(folder):
            sdir = run.search_dir(scale, dataset)
            rows.append(row(run, TRAIN.load(folder), SEARCH.load(sdir) if sdir is not None else None))
    return rows


def bnas_genotype_path(scale: str) -> Path:
    """The cell of the ``loss-bnas`` study: what the ablation's own β_P = 0 (``bnas``) search at seed 0 finds."""
    return _search_run("bnas", 0, None, "beta", "0").search_dir(scale) / GENOTYPE


def all_runs(genotype: str | os.PathLike, seeds: Sequence[int] = SEEDS, betas: Sequence[float] = BETAS,
             bnas_genotype: str | os.PathLike | None = None, loss_seeds: Sequence[int] = LOSS_SEEDS,
             gap_betas: Sequence[float] = GAP_BETAS) -> list[Run]:
    """The studies, searches shared between them listed once per study (cached, so computed once).

    ``bnas_genotype`` (:func:`bnas_genotype_path`) adds the ``loss-bnas`` study; its cell
    comes from a search of the β_P study, which :func:`cpnas.runs.run_all` finishes first.
    """
    runs = (beta_runs(seeds, betas) + gap_runs(seeds, gap_betas) + strategy_runs(seeds)
            + loss_runs(genotype, loss_seeds))
    if bnas_genotype is not None:
        runs += loss_runs(bnas_genotype, loss_seeds, study="loss-bnas")
    return runs


def unique_runs(runs: Sequence[Run], scale: str) -> list[Run]:
    """One run per training folder (the β = 0 / 2 points and bnas / cpnas share theirs)."""
    return first_per_key(runs, lambda run: run.train_dir(scale))


def specs(runs: Sequence[Run], scale: str, dataset: str = DEFAULT_DATASET) -> list[RunSpec]:
    """The runs as :class:`cpnas.runs.RunSpec` values at ``scale``, one per training folder, seed-major (a sweep
    stopped part-way has every point at seed 0 before any at seed 1): what :func:`cpnas.runs.run_all` computes
    and :func:`cpnas.runs.study_cost` sums."""
    return [run.spec(scale, dataset) for run in sorted(unique_runs(runs, scale), key=lambda run: run.seed)]


READINGS: tuple[tuple[str, str], ...] = (("beta", "printed (z = A_C + β_P(A_P − A_C))"),
                                         ("beta-gap", "gap_penalty (z = A_C − β_P(A_P − A_C))"))
"""The two readings of Eq. 1 in Fig. 6 (left): the study holding each one's runs, and its formula."""
