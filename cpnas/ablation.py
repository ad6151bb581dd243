"""Ablations: the β_P sweep and the search-strategy comparison of §3.4 (Fig. 6), and the CP loss.

Three studies, each a list of cached runs (search → train), every one stored under
``results/<scale>/ablation/`` so that the notebook (``05_ablation``) recomputes
only what is missing and an interrupted sweep resumes where it stopped:

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
about three hours on a 2-core CPU. :func:`run_all` runs every missing run, in
parallel worker processes (``--jobs``), from the command line::

    python -m cpnas.ablation --scale cpu --jobs 2
"""

from __future__ import annotations

import json
import logging
import math
import os
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from cpnas import runs as R
from cpnas.config import Config, get_config
from cpnas.data.registry import DEFAULT_DATASET
from cpnas.errors import CpnasError

log = logging.getLogger(__name__)

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
    return R.study_dir(scale, STUDY)


@dataclass(frozen=True)
class Run:
    """One cached run: a search (unless ``genotype`` is given) followed by one training."""

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
        return R.search_name(self.strategy, self.beta_p, variant=self.variant)

    @property
    def train_name(self) -> str:
        if self.name is not None:
            return self.name
        if self.study in LOSS_STUDIES:
            slug = "".join(ch if ch.isalnum() else "-" for ch in self.label.lower()).strip("-")
            return f"{self.study}-" + "-".join(filter(None, slug.split("-")))
        return f"{self.search_name}"

    def spec(self, scale: str, dataset: str = DEFAULT_DATASET,
             config_overrides: dict[str, Any] | None = None) -> R.RunSpec:
        """The run as a :class:`cpnas.runs.RunSpec`: the ablation's sizes (:func:`ablation_config`), its loss."""
        if scale not in ABLATION_SIZES:
            raise CpnasError(f"unknown scale {scale!r}; choose one of {', '.join(ABLATION_SIZES)}")
        method = {} if self.indicator == "printed" else {"search.indicator": self.indicator}
        if (self.study in LOSS_STUDIES and self.loss == "cp" and "loss.kernel_weight" not in dict(self.loss_overrides)
                and get_config(scale).loss.kernel_weight == 0):
            method["loss.kernel_weight"] = LOSS_KERNEL_WEIGHT  # the variant has the kernel term: measure it
        over = R.overrides({**ABLATION_SIZES[scale], **(config_overrides or {}), **dict(self.loss_overrides),
                            **method})
        search = None if self.genotype is not None else R.SearchSpec(
            self.strategy, seed=self.seed, beta_p=self.beta_p, dataset=dataset, overrides=over, study=STUDY,
            variant=self.variant)
        return R.RunSpec(self.train_name, seed=self.seed, search=search, genotype=self.genotype, size=self.size,
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
        for seed in seeds:
            if beta == 0.0:
                runs.append(_search_run("bnas", seed, None, "beta", f"{beta:g}"))
            elif beta == PAPER_BETA:
                runs.append(_search_run("cpnas", seed, None, "beta", f"{beta:g}"))
            else:
                runs.append(_search_run("cpnas", seed, beta, "beta", f"{beta:g}"))
    return runs


TABLE1_ROWS: dict[str, dict[str, Any]] = {
    "CP-NAS (Small)": {"strategy": "cpnas", "size": "small", "loss": "cp", "name": None},
    "CP-NAS (Small), cross-entropy only": {"strategy": "cpnas", "size": "small", "loss": "ce", "name": "cpnas-small-ce"},
    "CP-NAS (Medium)": {"strategy": "cpnas", "size": "medium", "loss": "cp", "name": "cpnas-medium"},
    "CP-NAS (Large)": {"strategy": "cpnas", "size": "large", "loss": "cp", "name": "cpnas-large"},
    "BNAS†": {"strategy": "bnas", "size": "medium", "loss": "cp", "name": "bnas-medium"},
}
"""Table 1's rows of ours (notebook 03): the search strategy, the size trained, the loss, the training's folder.
``CP-NAS (Small)`` is the ``cpnas`` run of Fig. 6 (right) at the same seed (one folder, computed once); BNAS†
is trained at the medium size as in the paper's Table 1 (BNAS, 5.57 M)."""

TABLE1_SEEDS: tuple[int, ...] = (0, 1, 2)
"""Seeds of Table 1 (every row of ours at 3 seeds, search and training)."""


def default_table1_seeds(scale: str) -> tuple[int, ...]:
    """:data:`TABLE1_SEEDS`, or ``(0, 1)`` at the smoke scale."""
    return TABLE1_SEEDS[:2] if scale == "smoke" else TABLE1_SEEDS


def table1_runs(seeds: Sequence[int] = TABLE1_SEEDS) -> list[Run]:
    """Table 1 of ours, study ``table1``: each row of :data:`TABLE1_ROWS` at every seed, with the ablation's
    sizes (:data:`ABLATION_SIZES`), so that its searches are those of Fig. 6 (right) at the same seeds."""
    return [Run(study="table1", label=label, seed=seed, strategy=row["strategy"], loss=row["loss"],
                size=row["size"], name=row["name"]) for label, row in TABLE1_ROWS.items() for seed in seeds]


def table1_metrics(runs: Sequence[Run], scale: str) -> dict[str, list[dict[str, Any]]]:
    """``{row label: [metrics.json of each finished seed]}`` of :func:`table1_runs`, for :func:`cpnas.tables.table1`."""
    from cpnas.io import read_json

    out: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        if is_done(run, scale):
            out.setdefault(run.label, []).append(read_json(run.train_dir(scale) / R.METRICS))
    return out


TABLE1_CLAIMS: tuple[tuple[str, str, int, str], ...] = (
    ("CP-NAS (Medium)", "BNAS†", +1, "CP-NAS beats BNAS† at a similar size (§3.2: 5.72 % vs 8.29 % error)"),
    ("CP-NAS (Small)", "CP-NAS (Small), cross-entropy only", +1, "the CP loss beats cross-entropy alone (§2.4)"),
    ("CP-NAS (Large)", "CP-NAS (Small)", +1, "the larger network is more accurate (Table 1: 4.73 % vs 6.5 % error)"),
)
"""Table 1's claims as ``(a, b, paper_sign, claim)``: the paper says top-1 of ``a`` > ``b`` when the sign is +1."""


def table1_verdicts(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each claim of :data:`TABLE1_CLAIMS` judged on the rows of :func:`table1_runs` (Welch over seeds, Holm over
    the three; :func:`judged`), with ``claim`` and ``words`` added."""
    rows = [r for r in rows if r["study"] == "table1"]
    present = {r["label"] for r in rows}
    claims = [c for c in TABLE1_CLAIMS if c[0] in present and c[1] in present]
    tests = judged(rows, "table1", [(a, b, sign) for a, b, sign, _ in claims])
    return [{**t, "claim": claim, "words": f"{in_words(t)}; {verdict_words(t)}"}
            for (_, _, _, claim), t in zip(claims, tests)]


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


def run_one(run: Run, scale: str, *, data_root: str | os.PathLike | None = None, device: str = "auto",
            dataset: str = DEFAULT_DATASET, config_overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Search (or load) and train (or load) one run (:func:`cpnas.evaluation.run_or_load`); returns one result row."""
    from cpnas.evaluation import run_or_load

    result = run_or_load(run.spec(scale, dataset, config_overrides), get_config(scale), data_root=data_root,
                         device=device)
    return row(run, result.metrics, result.search)


def row(run: Run, metrics: dict[str, Any], search: Any = None) -> dict[str, Any]:
    """The flat result of one run: what the figures and tables of 05 read."""
    cost = search.cost if search is not None else None
    return {
        "study": run.study, "label": run.label, "seed": run.seed, "strategy": run.strategy if run.genotype is None
        else None, "beta_p": _beta_of(run), "loss": run.label if run.study in LOSS_STUDIES else metrics.get("loss"),
        "top1": metrics["top1"], "test_error": metrics["test_error"],
        "genotype": json.dumps(metrics["genotype"], sort_keys=True),
        "train_wall_clock_s": metrics["wall_clock_s"],
        "search_wall_clock_s": cost["wall_clock_s"] if cost else None,
        "search_epochs": cost["epochs"] if cost else None,
        "params_m": metrics["params_m"], "train_images": metrics["train_images"],
        "test_images": metrics["test_images"], "epochs": metrics["epochs"], "device": metrics["device"],
        "scale": metrics["scale"], "dataset": metrics["dataset_description"],
        "train_dir": str(run.train_dir(metrics["scale"])),
    }


def _beta_of(run: Run) -> float | None:
    from cpnas.strategy_base import get_strategy

    if run.genotype is not None:
        return None
    cls = get_strategy(run.strategy)
    if cls.fixed_beta_p is not None:
        return cls.fixed_beta_p
    if not cls.uses_beta_p:
        return None
    return run.beta_p if run.beta_p is not None else PAPER_BETA


def is_done(run: Run, scale: str) -> bool:
    """Whether the run's training has finished (its ``metrics.json`` exists)."""
    return run.spec(scale).is_done(scale)


def load_rows(runs: Sequence[Run], scale: str, dataset: str = DEFAULT_DATASET) -> list[dict[str, Any]]:
    """Rows of the finished runs only (no computation): for inspecting a sweep in progress."""
    from cpnas.io import read_json
    from cpnas.search import load_search

    rows = []
    for run in runs:
        if not is_done(run, scale):
            continue
        metrics = read_json(run.train_dir(scale) / R.METRICS)
        sdir = run.search_dir(scale, dataset)
        rows.append(row(run, metrics, load_search(sdir) if sdir is not None else None))
    return rows


def bnas_genotype_path(scale: str) -> Path:
    """The cell of the ``loss-bnas`` study: what the ablation's own β_P = 0 (``bnas``) search at seed 0 finds."""
    return _search_run("bnas", 0, None, "beta", "0").search_dir(scale) / "genotype.json"


def all_runs(genotype: str | os.PathLike, seeds: Sequence[int] = SEEDS, betas: Sequence[float] = BETAS,
             bnas_genotype: str | os.PathLike | None = None, loss_seeds: Sequence[int] = LOSS_SEEDS,
             gap_betas: Sequence[float] = GAP_BETAS) -> list[Run]:
    """The studies, searches shared between them listed once per study (cached, so computed once).

    ``bnas_genotype`` (:func:`bnas_genotype_path`) adds the ``loss-bnas`` study; its cell
    comes from a search of the β_P study, which :func:`run_all` finishes first.
    """
    runs = (beta_runs(seeds, betas) + gap_runs(seeds, gap_betas) + strategy_runs(seeds)
            + loss_runs(genotype, loss_seeds))
    if bnas_genotype is not None:
        runs += loss_runs(bnas_genotype, loss_seeds, study="loss-bnas")
    return runs


def unique_runs(runs: Sequence[Run], scale: str) -> list[Run]:
    """One run per training folder (the β = 0 / 2 points and bnas / cpnas share theirs)."""
    from cpnas.runs import first_per_key

    return first_per_key(runs, lambda run: run.train_dir(scale))


def study_cost(runs: Sequence[Run], scale: str, dataset: str = DEFAULT_DATASET) -> dict[str, Any]:
    """The wall-clock the runs of a study recorded: each search and training folder counted once.

    A study's searches are shared between rows (Table 1's CP-NAS and BNAS† searches are Fig. 6
    (right)'s), so the sum is over unique folders: ``cost.json`` of each finished search,
    ``metrics.json`` of each finished training. Returns the seconds per kind, the folders
    counted and those not finished yet, for the studies' time budget (one thread per run;
    process start-up and data loading are not in it). A training's 32-bit Parent (the
    ``H = Parent`` loss variant trains one first, in ``<folder>/parent``) is counted as a training.

    ``projected_s`` adds, for each unfinished folder, the median recorded time of the finished
    folders of its kind (a search: its strategy; a training: its size and whether it trains a
    Parent), or of all finished folders of its kind when none of its own is finished: an
    estimate of the whole study from the runs so far, ``None`` while nothing is finished.
    """
    from cpnas.runs import recorded_seconds

    folders: dict[Path, tuple[str, tuple]] = {}
    for run in runs:
        sdir = run.search_dir(scale, dataset)
        if sdir is not None:
            folders.setdefault(sdir, ("search", (run.strategy,)))
        parent = dict(run.loss_overrides).get("loss.kernel_source") == "parent"
        folders.setdefault(run.train_dir(scale), ("train", (run.size, parent)))
    out: dict[str, Any] = {"search_s": 0.0, "train_s": 0.0, "searches": 0, "trainings": 0, "missing": []}
    seen: dict[tuple, list[float]] = {}
    for folder, (kind, key) in folders.items():
        seconds = recorded_seconds(folder, kind)
        if seconds is None:
            out["missing"].append((str(folder), kind, key))
            continue
        parent = recorded_seconds(folder / "parent", "train") if kind == "train" else None
        if parent is not None:  # the 32-bit Parent the H = Parent loss variant trains first
            seconds += parent
            out["trainings"] += 1
        out[f"{kind}_s"] += seconds
        out["searches" if kind == "search" else "trainings"] += 1
        seen.setdefault((kind, key), []).append(seconds)
        seen.setdefault((kind,), []).append(seconds)
    out["total_s"] = out["search_s"] + out["train_s"]
    guesses = [seen.get((kind, key)) or seen.get((kind,)) for _, kind, key in out["missing"]]
    out["projected_s"] = (None if any(g is None for g in guesses)
                          else out["total_s"] + sum(statistics.median(g) for g in guesses))
    out["missing"] = [m[0] for m in out["missing"]]
    return out


def cost_words(cost: dict[str, Any], jobs: int = 2) -> str:
    """:func:`study_cost` in one sentence, with the wall-clock of ``jobs`` runs side by side (sum / jobs: a lower
    bound, since a training waits for its search)."""
    text = (f"{cost['searches']} searches {cost['search_s'] / 60:.1f} min + {cost['trainings']} trainings "
            f"{cost['train_s'] / 60:.1f} min = {cost['total_s'] / 60:.1f} min of one-thread run time, "
            f"≈ {cost['total_s'] / 60 / jobs:.1f} min of wall-clock {jobs} at a time")
    if cost["missing"]:
        text += f"; {len(cost['missing'])} run(s) not finished, not counted"
        if cost["projected_s"] is not None:
            text += (f" (projected from the finished runs of their kind: {cost['projected_s'] / 60:.0f} min in all, "
                     f"≈ {cost['projected_s'] / 3600 / jobs:.1f} h {jobs} at a time)")
    return text


def run_all(runs: Sequence[Run], scale: str, *, jobs: int = 1, data_root: str | os.PathLike | None = None,
            device: str = "auto", dataset: str = DEFAULT_DATASET, executor: str = "local",
            slurm: Any = None) -> list[dict[str, Any]]:
    """Compute every missing run (``jobs`` one-thread workers, :func:`cpnas.evaluation.run_all`), then load all rows.

    Runs whose training is finished are skipped; interrupted ones resume from their
    checkpoints; a run on the cell another run of the sweep finds waits for it. A run
    failing with a :class:`CpnasError` does not stop the others; one error listing the
    failures is raised at the end.
    """
    from cpnas.evaluation import run_all as run_all_specs

    todo = [r for r in unique_runs(runs, scale) if not is_done(r, scale)]
    # seed-major order: a sweep stopped part-way has every point at seed 0 before any at seed 1
    todo.sort(key=lambda r: r.seed)
    if todo:
        log.info("ablation at %s: %d of %d runs to compute with %d worker(s)", scale, len(todo),
                 len(unique_runs(runs, scale)), jobs)
        run_all_specs([r.spec(scale, dataset) for r in todo], get_config(scale), workers=jobs,
                      data_root=data_root, device=device, executor=executor, slurm=slurm, desc="ablation runs",
                      names=[f"{r.train_name} seed {r.seed}" for r in todo], load=False)
    return load_rows(runs, scale, dataset)


# --------------------------------------------------------------------------- summaries


def summarize(rows: Sequence[dict[str, Any]], study: str, by: str = "label") -> "Any":
    """Mean ± std (sample std, n−1) of top-1 per ``by`` value of one study, with n and the costs."""
    import pandas as pd

    df = pd.DataFrame([r for r in rows if r["study"] == study])
    if df.empty:
        return pd.DataFrame(columns=[by, "n", "top1 mean", "top1 std", "search (min)", "train (min)"])
    out = []
    for value, grp in df.groupby(by, sort=False):
        top1 = list(grp["top1"])
        search = [s for s in grp["search_wall_clock_s"] if s is not None and not _isnan(s)]
        out.append({by: value, "n": len(top1), "top1 mean": statistics.fmean(top1),
                    "top1 std": statistics.stdev(top1) if len(top1) > 1 else float("nan"),
                    "search (min)": statistics.fmean(search) / 60 if search else float("nan"),  # float column
                    "train (min)": statistics.fmean(grp["train_wall_clock_s"]) / 60})
    return pd.DataFrame(out)


def difference(rows: Sequence[dict[str, Any]], study: str, a: Any, b: Any, by: str = "label",
               measure: str = "top1") -> dict[str, Any]:
    """Mean ``measure`` (default top-1) of ``a`` minus that of ``b`` within one study, over seeds.

    When both arms trained the same cell at the same seeds (the CP loss against its parts,
    Table 1's CP loss against cross-entropy), the test is paired (:func:`cpnas.stats.paired`);
    otherwise Welch's (:func:`cpnas.stats.welch`). Adds ``a``, ``b`` and ``ratio`` (= t).
    """
    from cpnas.stats import paired, welch

    ra = [r for r in rows if r["study"] == study and r[by] == a]
    rb = [r for r in rows if r["study"] == study and r[by] == b]
    pairs = pairing(ra, rb)
    if pairs is not None:
        d = paired([x[measure] for x, _ in pairs], [y[measure] for _, y in pairs])
    else:
        d = welch([r[measure] for r in ra], [r[measure] for r in rb])
    return {"a": a, "b": b, **d, "ratio": d["t"]}


def pairing(ra: Sequence[dict[str, Any]], rb: Sequence[dict[str, Any]]) -> list[tuple[dict, dict]] | None:
    """The rows of two arms matched by seed, when both trained one cell per seed, the same in both; else None."""
    if not ra or not rb or any(r.get("genotype") is None for r in (*ra, *rb)):
        return None
    by_seed_a, by_seed_b = {r["seed"]: r for r in ra}, {r["seed"]: r for r in rb}
    if len(by_seed_a) != len(ra) or len(by_seed_b) != len(rb) or set(by_seed_a) != set(by_seed_b):
        return None
    if any(by_seed_a[s]["genotype"] != by_seed_b[s]["genotype"] for s in by_seed_a):
        return None
    return [(by_seed_a[s], by_seed_b[s]) for s in sorted(by_seed_a)]


def significant(d: dict[str, Any], level: float = 0.05) -> bool:
    """Whether a :func:`difference` is beyond the seed-to-seed noise (Welch's p below ``level``)."""
    return d["p"] is not None and d["p"] < level


CHANCE_TOP1 = 10.0
"""Top-1 (%) of a guess among CIFAR-10's 10 classes: within 3 points of it a mean is not evidence."""


def in_words(d: dict[str, Any], unit: str = "points") -> str:
    if d["diff"] is None:
        return "not enough seeds to compare"
    if d["diff"] == 0 and d["se"] == 0:
        return "+0.00 points (every seed gave the same accuracy)"
    noise = ("larger than the seed-to-seed noise, before any correction for multiple tests" if significant(d)
             else "within the seed-to-seed noise")
    p = f"= {d['p']:.2f}" if d["p"] >= 0.01 else "< 0.01"
    ci = "" if d.get("ci_low") is None else f", 95 % CI [{d['ci_low']:+.2f}, {d['ci_high']:+.2f}]"
    if d.get("boot_low") is not None:
        ci += f" (bootstrap [{d['boot_low']:+.2f}, {d['boot_high']:+.2f}])"
    return f"{d['diff']:+.2f} {unit}, ± {d['se']:.2f} standard error{ci}, {d.get('test', 'Welch')} p {p} ({noise})"


def kendall_words(t: dict[str, Any], x: str, y: str) -> str:
    """:func:`cpnas.stats.kendall`'s result in words (τ-b, p, the bootstrap interval, n)."""
    if t["tau"] is None:
        return f"Kendall τ-b between {x} and {y}: not enough cells (n = {t['n']})"
    ci = "" if t["ci_low"] is None else f", 95 % bootstrap interval [{t['ci_low']:+.2f}, {t['ci_high']:+.2f}]"
    p = f"= {t['p']:.3f}" if t["p"] >= 0.001 else "< 0.001"
    return f"Kendall τ-b between {x} and {y}: {t['tau']:+.2f}{ci}, p {p} (n = {t['n']})"


def judged(rows: Sequence[dict[str, Any]], study: str, tests: Sequence[tuple[Any, Any, int]],
           by: str = "label", chance: float = CHANCE_TOP1, measure: str = "top1") -> list[dict[str, Any]]:
    """Welch tests ``a − b`` of one figure, Holm-corrected together, each with its verdict (:mod:`cpnas.stats`).

    ``tests`` holds ``(a, b, paper_sign)``: +1 where the paper says a > b, −1 where a < b.
    ``measure`` is the row field compared (default top-1); ``chance`` is its chance level
    (``-inf`` for one that has none, e.g. a conv share).
    """
    return _judged_across(rows, [(study, a, b, sign) for a, b, sign in tests], by=by, chance=chance,
                          measure=measure)


def _judged_across(rows: Sequence[dict[str, Any]], tests: Sequence[tuple[str, Any, Any, int]], by: str,
                   chance: float, measure: str = "top1") -> list[dict[str, Any]]:
    """:func:`judged` with a study per test, ``(study, a, b, paper_sign)``: one Holm family across studies."""
    from cpnas.stats import holm, verdict

    diffs = [difference(rows, study, a, b, by=by, measure=measure) for study, a, b, _ in tests]
    out = []
    for (study, a, b, sign), d, p_adj in zip(tests, diffs, holm([d["p"] for d in diffs])):
        means = [statistics.fmean(r[measure] for r in rows if r["study"] == study and r[by] == v) if d["n_" + k]
                 else float("nan") for v, k in ((a, "a"), (b, "b"))]
        v = verdict(d, paper_sign=sign, mean_a=means[0], mean_b=means[1], chance=chance, p_adjusted=p_adj,
                    family_size=sum(x["p"] is not None for x in diffs))
        out.append({**d, **v, "mean_a": means[0], "mean_b": means[1]})
    return out


def verdict_words(v: dict[str, Any]) -> str:
    """One verdict in words: the label, the Holm-adjusted p, and what the seeds could have detected."""
    if v["verdict"] == "not evidence":
        return "not evidence (a side within 3 points of chance)"
    if v.get("diff") is None:
        return "not measured"
    p = v["p_adjusted"] if v.get("p_adjusted") is not None else v["p"]
    text = f"{v['verdict']} (Holm-adjusted p = {p:.3f})"
    if v["verdict"] == "not resolved" and v.get("mde") is not None:
        text += (f"; these seeds could detect a difference of {v['mde']:.1f} points at 80 % power at the Holm "
                 f"level")
    return text


def beta_verdict(rows: Sequence[dict[str, Any]]) -> str:
    """In words, from the data: does accuracy rise with β_P up to 2 and fall beyond (§3.4)?

    Two Welch tests over seeds, Holm-corrected together: β_P = 2 against β_P = 0 (the
    rise) and against the largest β_P (the fall). Each gets a verdict (supported,
    contradicted, not resolved, or not evidence near chance).
    """
    beta = [r for r in rows if r["study"] == "beta"]
    s = summarize(beta, "beta", by="beta_p")
    if s.empty or len(s) < 3:
        return "Too few β_P values have finished runs to judge the shape of the curve."
    s = s.sort_values("beta_p")
    best = s.loc[s["top1 mean"].idxmax()]
    top = max(BETAS) if max(BETAS) in set(s["beta_p"]) else max(s["beta_p"])
    if top <= PAPER_BETA:
        return "The β_P > 2 runs have not finished yet: the shape of the curve cannot be judged."
    rise, fall = judged(beta, "beta", [(PAPER_BETA, 0.0, +1), (PAPER_BETA, top, +1)], by="beta_p")
    labels = {rise["verdict"], fall["verdict"]}
    overall = ("supported" if labels == {"supported"} else "contradicted" if "contradicted" in labels
               else "not evidence" if "not evidence" in labels else "not resolved")
    return (f"Mean top-1 peaks at β_P = {best['beta_p']:g} ({best['top1 mean']:.2f} %). "
            f"The rise (β_P = 2 minus β_P = 0): {in_words(rise)}; {verdict_words(rise)}. "
            f"The fall (β_P = 2 minus β_P = {top:g}): {in_words(fall)}; {verdict_words(fall)}. "
            f"The paper's shape (up to β_P = 2, down beyond): {overall}.")


def strategy_verdict(rows: Sequence[dict[str, Any]]) -> str:
    """In words, from the data: does CP-NAS beat Random, PC-DARTS and BNAS† (Holm over the three), how fast?"""
    strat = [r for r in rows if r["study"] == "strategy"]
    s = summarize(strat, "strategy")
    if s.empty or PAPER_STRATEGY not in set(s["label"]):
        return "The CP-NAS runs of the strategy study have not finished yet."
    others = [other for other in STRATEGIES if other != PAPER_STRATEGY and other in set(s["label"])]
    tests = judged(strat, "strategy", [(PAPER_STRATEGY, other, +1) for other in others])
    parts = [f"CP-NAS minus {other}: {in_words(d)}; {verdict_words(d)}" for other, d in zip(others, tests)]
    cost = s.set_index("label")["search (min)"]
    speed = ""
    fast, slow = SPEED_CLAIM
    if cost.get(slow, float("nan")) > 0:  # NaN (no search recorded) compares false
        from cpnas.strategy_base import title_of

        ratio = cost[fast] / cost[slow]
        per_epoch = search_cost_projection(strat)
        speed = (f" Search wall-clock here: {title_of(fast)} {cost[fast]:.1f} min vs {title_of(slow)} "
                 f"{cost[slow]:.1f} min (ratio {ratio:.2f}, on this scale's schedules: "
                 f"{per_epoch[f'epochs_{fast}']:g} vs {per_epoch[f'epochs_{slow}']:g} epochs). Per epoch, projected "
                 f"to the paper's {per_epoch[f'paper_epochs_{fast}']} vs {per_epoch[f'paper_epochs_{slow}']} epochs: "
                 f"ratio {per_epoch['ratio']:.2f} (the paper reports {title_of(fast)} 30 % faster, a ratio of about "
                 f"0.70).")
    return "; ".join(parts) + "." + speed


READINGS: tuple[tuple[str, str], ...] = (("beta", "printed (z = A_C + β_P(A_P − A_C))"),
                                         ("beta-gap", "gap_penalty (z = A_C − β_P(A_P − A_C))"))
"""The two readings of Eq. 1 in Fig. 6 (left): the study holding each one's runs, and its formula."""


def gap_judged(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """β_P = 2 minus β_P = 0.5 under each reading of :data:`READINGS`, Holm-corrected over the two.

    One :func:`judged` result per reading (with ``study`` and ``reading`` added); a reading
    without finished runs at both β_P has ``p = None``, which Holm leaves out.
    """
    judged_ = _judged_across(rows, [(study, PAPER_BETA, 0.5, +1) for study, _ in READINGS], by="beta_p",
                             chance=CHANCE_TOP1)
    return [{**d, "study": study, "reading": reading} for (study, reading), d in zip(READINGS, judged_)]


def gap_verdict(rows: Sequence[dict[str, Any]]) -> str:
    """In words: under each reading of Eq. 1, is β_P = 2 better than β_P = 0.5 (Fig. 6's rise)? Holm over the two."""
    done = [d for d in gap_judged(rows) if d["n_a"] and d["n_b"]]
    if not done:
        return "The β_P = 0.5 and 2 runs of both readings have not finished yet."
    return "; ".join(f"{d['reading']}: β_P = 2 minus β_P = 0.5: {in_words(d)}; {verdict_words(d)}"
                     for d in done) + "."


def loss_verdicts(rows: Sequence[dict[str, Any]], study: str = "loss") -> list[dict[str, Any]]:
    """The full CP loss (Eq. 4) against each other variant of one loss study, Holm over the comparisons.

    The paper's direction is +1 throughout (§2.4 proposes the full loss as the better one).
    """
    mine = [r for r in rows if r["study"] == study]
    have = {r["label"] for r in mine}
    full = "CP loss (Eq. 4)"
    others = [v for v in LOSS_VARIANTS if v != full and v in have]
    if full not in have or not others:
        return []
    tests = judged(mine, study, [(full, other, +1) for other in others])
    return [{**t, "claim": f"CP loss minus {other}", "words": f"{in_words(t)}; {verdict_words(t)}"}
            for other, t in zip(others, tests)]


def search_cost_projection(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The search time per epoch of the two strategies of :data:`SPEED_CLAIM`, projected to the paper's schedules.

    The mean seconds per search epoch of each strategy's runs times its number of epochs at
    ``paper`` (its :meth:`~cpnas.strategy_base.Strategy.plan`). Epochs of different kinds
    (PC-DARTS' warm-up epochs are cheaper than its bilevel ones) make the projection exact only
    when the runs had the paper's share of each kind. A scoring split larger next to its training
    split than the paper's counts against the strategy that scores.
    """
    from cpnas.strategy_base import search_epochs

    paper = get_config("paper")
    paper_epochs = {name: search_epochs(name, paper) for name in SPEED_CLAIM}
    out: dict[str, Any] = {}
    for name in SPEED_CLAIM:
        mine = [r for r in rows if r["strategy"] == name and r["search_wall_clock_s"] and r["search_epochs"]]
        if not mine:
            raise CpnasError(f"no finished {name} search among the rows")
        out[f"epoch_s_{name}"] = statistics.fmean(r["search_wall_clock_s"] / r["search_epochs"] for r in mine)
        out[f"epochs_{name}"] = statistics.fmean(r["search_epochs"] for r in mine)
        out[f"paper_epochs_{name}"] = paper_epochs[name]
    fast, slow = SPEED_CLAIM
    out["ratio"] = (out[f"epoch_s_{fast}"] * paper_epochs[fast]) / (out[f"epoch_s_{slow}"] * paper_epochs[slow])
    return out


def genotype_table(runs: Sequence[Run], scale: str):
    """One row per finished search of ``runs``: β_P, seed, kept edges, the share of convolution ops.

    ``cells`` is a short digest of both found cells: two searches with the same digest
    found the same architecture (e.g. two β_P that rank every edge's ops the same way).
    """
    import hashlib
    import json

    import pandas as pd

    from cpnas.genotype import load_genotype
    from cpnas.ops import CONV_OPS, POOL_OPS
    from cpnas.search import is_finished

    out = []
    for run in runs:
        sdir = run.search_dir(scale)
        if sdir is None or not is_finished(sdir):
            continue
        g = load_genotype(sdir / "genotype.json")
        ops = [e[0] for kind in ("normal", "reduce") for e in g.cell(kind)[0]]
        out.append({"study": run.study, "label": run.label, "beta_p": _beta_of(run), "seed": run.seed,
                    "kept edges": len(ops), "conv ops": sum(o in CONV_OPS for o in ops),
                    "pool ops": sum(o in POOL_OPS for o in ops),
                    "conv share": sum(o in CONV_OPS for o in ops) / max(1, len(ops)),
                    "cells": hashlib.sha1(json.dumps(g.to_dict(), sort_keys=True).encode()).hexdigest()[:8]})
    return pd.DataFrame(out)


def conv_share_vs_accuracy(table, rows: Sequence[dict[str, Any]]) -> tuple[Any, dict[str, Any]]:
    """Each searched cell's convolution share next to its trained top-1, and Kendall's τ-b between them.

    Tests the explanation that convolution-heavy 1-bit cells train worse at small budgets on
    every searched cell trained at the small size: ``table`` is :func:`genotype_table` of the
    runs (the β_P, ``gap_penalty`` and strategy studies), ``rows`` their results; each search is
    paired with its own training (same study, label, seed). A cell found twice at one seed (the
    β_P = 2 search is also the strategy study's CP-NAS; two β_P that rank every op alike) is
    one training result and counted once. Returns the pairs and :func:`cpnas.stats.kendall`
    (τ-b, its p-value and a percentile-bootstrap interval over cells).
    """
    import pandas as pd

    from cpnas.stats import kendall

    columns = ["study", "label", "seed", "cells", "conv share", "top1"]
    acc = pd.DataFrame([{k: r[k] for k in ("study", "label", "seed", "top1")} for r in rows
                        if r["study"] in ("beta", "beta-gap", "strategy")])
    if len(table) == 0 or acc.empty:
        return pd.DataFrame(columns=columns), kendall([], [])
    merged = table.merge(acc, on=["study", "label", "seed"]).drop_duplicates(["cells", "seed"])[columns]
    return merged.reset_index(drop=True), kendall(list(merged["conv share"]), list(merged["top1"]))


def same_cells(table) -> list[tuple[float, ...]]:
    """Groups of β_P values whose searches found the same cells at every seed (from :func:`genotype_table`).

    Eq. 1 ranks an edge's ops by z = (1 − β_P)·A_C + β_P·A_P; two β_P that order every
    pair of scores the same way make the same removals, and the Child's training does
    not depend on β_P, so such searches are identical and their trainings too: their
    points in Fig. 6 are one result, not independent evidence.
    """
    if len(table) == 0:
        return []
    beta = table[table["beta_p"].notna()]
    grid = beta.pivot_table(index="beta_p", columns="seed", values="cells", aggfunc="first")
    grid = grid.dropna()
    groups: dict[tuple[str, ...], list[float]] = {}
    for b, digests in grid.iterrows():
        groups.setdefault(tuple(digests), []).append(float(b))
    return [tuple(g) for g in groups.values() if len(g) > 1]


def same_cells_in_words(table) -> str:
    """:func:`same_cells` as sentences for the notebook, with the β_P that coincide at single seeds."""
    groups = same_cells(table)

    def names(g):
        return ", ".join(f"{b:g}" for b in g)

    text = ("Every β_P found different cells for at least one seed." if not groups else
            "; ".join(f"β_P = {names(g)}" for g in groups) + " found the same cells at every seed (Eq. 1 ranked "
            "every edge's ops alike), so their trainings are the same runs: in Fig. 6 these points repeat one result.")
    beta = table[table["beta_p"].notna()] if len(table) else table
    per_seed = []
    for seed, grp in (beta.groupby("seed") if len(beta) else ()):
        for digest, same in grp.groupby("cells"):
            betas = tuple(sorted(float(b) for b in same["beta_p"]))
            if len(betas) > 1 and betas not in groups:
                per_seed.append(f"seed {seed}: β_P = {names(betas)}")
    if per_seed:
        text += " Same cells at single seeds: " + "; ".join(per_seed) + "."
    distinct = beta["cells"].nunique() if len(beta) else 0
    return text + f" In all, {len(beta)} searches found {distinct} distinct architectures."


def _isnan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


def main(argv: Sequence[str] | None = None) -> int:
    from cpnas.cli.common import add_executor_args, name_list, run_study, seed_list, slurm_options, study_parser

    p = study_parser("python -m cpnas.ablation", "Compute the missing runs of the ablation studies (notebook 05).",
                     tuple(ABLATION_SIZES))
    studies = ("table1", "beta", "beta-gap", "strategy", *LOSS_STUDIES)
    p.add_argument("--study", type=name_list((*studies, "all"), "study"), default=("all",),
                   help=f"comma-separated studies, computed as one run list (default: all = every one but "
                        f"loss-bnas); from {', '.join(studies)}")
    p.add_argument("--seeds", default=None, type=seed_list,
                   help="comma-separated seeds (default: 0-4 for Fig. 6's studies, 0-2 for Table 1 and the "
                        "loss studies)")
    p.add_argument("--genotype", default=None, help="genotype of the loss study (default: the 02 search's)")
    p.add_argument("--device", default="auto")
    p.add_argument("--cost", action="store_true",
                   help="compute nothing: print the wall-clock the chosen studies' finished runs recorded, and that "
                        "sum divided by --jobs (at least 2: the budget assumes two one-thread runs at a time)")
    add_executor_args(p)
    args = p.parse_args(argv)

    def work():
        chosen = set(studies) - {"loss-bnas"} if "all" in args.study else set(args.study)
        seeds = args.seeds or default_seeds(args.scale)
        few = args.seeds or default_loss_seeds(args.scale)
        runs: list[Run] = []
        if "table1" in chosen:
            runs += table1_runs(args.seeds or default_table1_seeds(args.scale))
        if "beta" in chosen:
            runs += beta_runs(seeds)
        if "beta-gap" in chosen:
            runs += gap_runs(seeds)
        if "strategy" in chosen:
            runs += strategy_runs(seeds)
        if "loss" in chosen:
            from cpnas.tables import default_genotype_path, resolve_genotype

            geno = args.genotype or default_genotype_path(args.scale)
            resolve_genotype(geno, args.scale)  # fails early with the command that makes it
            runs += loss_runs(geno, few)
        if "loss-bnas" in chosen:
            # its cell is the β_P = 0 search at seed 0: listed so that run_all computes it first
            runs += beta_runs((0,), (0.0,)) + loss_runs(bnas_genotype_path(args.scale), few, study="loss-bnas")
        if args.cost:
            return cost_words(study_cost(runs, args.scale), args.jobs if args.jobs > 1 else 2)
        rows = run_all(runs, args.scale, jobs=args.jobs, data_root=args.data, device=args.device,
                       executor=args.executor, slurm=slurm_options(args, args.scale))
        return f"{len(rows)} finished runs"

    return run_study(p.prog, work)


if __name__ == "__main__":
    raise SystemExit(main())
