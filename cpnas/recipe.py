"""The recipe sweep: which training recipe lets a 1-bit cell learn within the ``cpu`` budget.

The paper's recipe (§3.1: SGD, lr 0.025, momentum 0.9, one weight decay, cosine)
leaves the 1-bit networks of the ``cpu`` scale at chance: a 1-bit conv followed by
BN is invariant to the scale of its latent weights, their gradient is much smaller
than a 32-bit twin's, and at lr 0.025 they move a tiny fraction of their size per
step, so almost no sign flips within a CPU budget. BNN practice trains latent weights with
Adam and no weight decay on them (Bi-Real Net, ReActNet, Real-to-Binary, larq).

:data:`VARIANTS` are the recipes tried; each trains the published DARTS_V2 cell
(1-bit, the ``cpu`` small size) on the ``cpu`` training subset for
:data:`SWEEP_EPOCHS` epoch(s) and is measured on a validation split held out of
the training images (``cifar.val_fraction``) and on the test subset. The choice
is made on validation top-1 only; the test column is reported, never used.
Then the chosen recipe is trained at the full ``cpu`` budget at 3 seeds
(:func:`confirm`).

``python -m cpnas.recipe --jobs 1`` computes the missing runs and writes
``tables/recipe_sweep.{csv,md}``.
"""

from __future__ import annotations

import logging
import statistics
import sys
from pathlib import Path
from typing import Any, Sequence

from cpnas import runs
from cpnas.config import Config, get_config
from cpnas.data import DEFAULT_DATASET, get_dataset
from cpnas.errors import CpnasError
from cpnas.genotype import DARTS_V2

log = logging.getLogger(__name__)

SWEEP_EPOCHS = 1
"""Epochs of a sweep run: one pass over the 20,000 ``cpu`` training images."""

_ADAM = {"cifar.optimizer": "adam", "cifar.lr_schedule": "cosine_step", "cifar.weight_decay": 0.0,
         "cifar.binary_weight_decay": 0.0, "cifar.cutout": 0}
_PAPER = {"cifar.optimizer": "sgd", "cifar.lr": 0.025, "cifar.lr_schedule": "cosine_epoch",
          "cifar.weight_decay": 3e-4, "cifar.binary_weight_decay": 3e-4, "cifar.cutout": 16}

VARIANTS: dict[str, dict[str, Any]] = {
    # name: {"overrides": recipe fields, "loss": ce | cp}
    "paper-sgd": {"overrides": _PAPER, "loss": "ce"},
    "adam-2e-3": {"overrides": {**_ADAM, "cifar.lr": 2e-3}, "loss": "ce"},
    "adam-5e-3": {"overrides": {**_ADAM, "cifar.lr": 5e-3}, "loss": "ce"},
    "adam-1e-2": {"overrides": {**_ADAM, "cifar.lr": 1e-2}, "loss": "ce"},
    "adam-2e-2": {"overrides": {**_ADAM, "cifar.lr": 2e-2}, "loss": "ce"},
    "adam-5e-3-cp-k1": {"overrides": {**_ADAM, "cifar.lr": 5e-3, "loss.kernel_weight": 1.0}, "loss": "cp"},
    "adam-5e-3-cp-k0.03": {"overrides": {**_ADAM, "cifar.lr": 5e-3, "loss.kernel_weight": 0.03}, "loss": "cp"},
    "adam-5e-3-cp-k0": {"overrides": {**_ADAM, "cifar.lr": 5e-3, "loss.kernel_weight": 0.0}, "loss": "cp"},
}


STUDY, SWEEP, FULL = "recipe", "sweep", "full"
"""The recipe study's folder and its two stages in the results layout (:mod:`cpnas.runs`)."""


def sweep_overrides(scale: str, variant: str, *, full: bool = False) -> dict[str, Any]:
    """``variant``'s recipe fields (and, unless ``full``, :data:`SWEEP_EPOCHS`) over the ``scale`` preset."""
    if variant not in VARIANTS:
        raise CpnasError(f"unknown recipe variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    over = dict(VARIANTS[variant]["overrides"])
    if not full and scale != "smoke":
        section = get_dataset(DEFAULT_DATASET).train_section
        over[f"{section}.epochs"] = SWEEP_EPOCHS
        over[f"{section}.eval_every"] = SWEEP_EPOCHS
    return over


def sweep_config(scale: str, variant: str, *, full: bool = False) -> Config:
    """The ``scale`` preset with ``variant``'s recipe (and, unless ``full``, :data:`SWEEP_EPOCHS`)."""
    return get_config(scale, sweep_overrides(scale, variant, full=full))


CELLS = ("darts_v2", "cpnas-s0")
"""The cells a recipe trains: the published DARTS_V2, or the genotype of the scale's CP-NAS search at
seed 0 (``results/<scale>/search/cpnas/seed0``, 02's search; run first if missing)."""

_CELL_SEARCHES = {"cpnas-s0": runs.SearchSpec("cpnas", seed=0)}


def run_spec(scale: str, variant: str, seed: int, *, full: bool = False, cell: str = "darts_v2") -> runs.RunSpec:
    """One recipe variant trained on ``cell`` (:data:`CELLS`) at one seed, in the sweep or the full stage."""
    if cell not in CELLS:
        raise CpnasError(f"unknown cell {cell!r}; choose one of {', '.join(CELLS)}")
    search = _CELL_SEARCHES.get(cell)
    return runs.RunSpec(f"recipe-{variant}-{cell}", seed=seed, search=search,
                        genotype=DARTS_V2 if search is None else None, size="small", loss=VARIANTS[variant]["loss"],
                        dataset=DEFAULT_DATASET, overrides=runs.overrides(sweep_overrides(scale, variant, full=full)),
                        study=STUDY, stage=FULL if full else SWEEP,
                        folder=variant if cell == "darts_v2" else f"{variant}-on-{cell}")


def run_dir(scale: str, variant: str, seed: int, *, full: bool = False, cell: str = "darts_v2") -> Path:
    return run_spec(scale, variant, seed, full=full, cell=cell).out(scale)


def specs(scale: str, variants: Sequence[str], seeds: Sequence[int], *, full: bool = False,
          cell: str = "darts_v2") -> list[runs.RunSpec]:
    """Every run of ``variants`` × ``seeds``, seed-major, on ``cell`` in the sweep or the full stage."""
    return [run_spec(scale, v, s, full=full, cell=cell) for s in seeds for v in variants]


def names(todo: Sequence[runs.RunSpec]) -> list[str]:
    """The runs as the log names them: variant, cell and seed."""
    parts = [s.folder.partition("-on-") for s in todo]
    return [f"{variant} on {cell or 'darts_v2'} seed {s.seed}" for s, (variant, _, cell) in zip(todo, parts)]


def chosen_variant(rows: list[dict]) -> str | None:
    """The variant with the best mean validation top-1 over its seeds (DARTS_V2 sweep runs only)."""
    by: dict[str, list[float]] = {}
    for r in rows:
        if r["stage"] == "sweep" and r.get("genotype", "darts_v2") == "darts_v2" and r.get("val_top1") is not None:
            by.setdefault(r["recipe"], []).append(r["val_top1"])
    if not by:
        return None
    return max(by, key=lambda v: statistics.fmean(by[v]))


def collect(scale: str) -> list[dict]:
    """One row per finished sweep or confirmation run under ``results/<scale>/recipe``."""
    rows = []
    for stage in (SWEEP, FULL):
        for path in sorted(runs.stage_dir(scale, STUDY, stage).glob(f"*/seed*/{runs.METRICS}")):
            m = runs.TRAIN.load(path.parent)
            variant, _, cell = path.parent.parent.name.partition("-on-")
            rows.append({"recipe": variant, "stage": stage, "genotype": cell or "darts_v2", "seed": m["seed"],
                         "loss": m["loss"], "epochs": m["epochs"], "train_images": m["train_images"],
                         "val_top1": m.get("val_top1"), "test_top1": m["top1"],
                         "val_images": m.get("val_images"), "test_images": m["test_images"],
                         "minutes": runs.thread_seconds(m, path) / 60, "threads": m.get("threads")})
    chosen = chosen_variant(rows)
    for r in rows:
        r["chosen"] = r["recipe"] == chosen
    return rows


def table(scale: str):
    """DataFrame of :func:`collect`, sweep first, with the chosen variant marked."""
    import pandas as pd

    cols = ["recipe", "chosen", "stage", "genotype", "seed", "loss", "epochs", "train_images", "val_top1",
            "test_top1", "val_images", "test_images", "minutes", "threads"]
    return pd.DataFrame(collect(scale), columns=cols)


CAPTION = ("Recipe sweep: 1-bit DARTS_V2 at the cpu small size; chosen on validation top-1. minutes: the run's "
           "CPU time where its record has it, else its wall-clock")


def write_table(scale: str) -> Path:
    """``tables/recipe_sweep.{csv,md}`` (or ``results/smoke/tables`` at smoke)."""
    from cpnas.paths import save_table

    return save_table(table(scale), "recipe_sweep", scale, caption=CAPTION)[1]


def main(argv: list[str] | None = None) -> int:
    from cpnas.arguments import name_list, run_study, seed_list, study_parser

    p = study_parser("python -m cpnas.recipe", __doc__.split("\n\n")[0], ("cpu", "smoke", "paper"))
    p.add_argument("--variants", default=tuple(VARIANTS), type=name_list(list(VARIANTS), "variant(s)"),
                   help="comma-separated names of VARIANTS (default: all)")
    p.add_argument("--seeds", default=(0,), type=seed_list, help="comma-separated seeds, e.g. 0,1,2 (default: 0)")
    p.add_argument("--full", action="store_true", help="train at the scale's full budget (the confirmation)")
    p.add_argument("--cell", default="darts_v2", choices=CELLS,
                   help="darts_v2 (default) or cpnas-s0, the genotype of the scale's CP-NAS search at seed 0")
    args = p.parse_args(argv)

    def work():
        todo = specs(args.scale, args.variants, args.seeds, full=args.full, cell=args.cell)
        runs.run_all(todo, get_config(args.scale), workers=args.jobs, data_root=args.data, desc="recipe runs",
                     names=names(todo), load=False)
        return write_table(args.scale)

    return run_study(p.prog, work)


if __name__ == "__main__":
    sys.exit(main())


def figure(df):
    """Validation and test top-1 of every sweep variant (dots: seeds), the chosen one in red; chance at 10 %."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.6), layout="constrained")
    ax = fig.subplots()
    sweep = df[df["stage"] == "sweep"]
    variants = list(dict.fromkeys(sweep["recipe"]))
    for i, v in enumerate(variants):
        rows = sweep[sweep["recipe"] == v]
        color = "C3" if rows["chosen"].any() else "C0"
        ax.scatter([i - 0.1] * len(rows), rows["val_top1"], color=color, marker="o",
                   label="validation" if i == 0 else None)
        ax.scatter([i + 0.1] * len(rows), rows["test_top1"], color=color, marker="x",
                   label="test (reported, not used)" if i == 0 else None)
    ax.axhline(10, color="grey", lw=0.6, ls=":", label="chance")
    ax.set_xticks(range(len(variants)), variants, rotation=20, fontsize=8)
    ax.set_ylabel("top-1 %")
    ax.set_title(f"recipe sweep on 1-bit DARTS_V2, {SWEEP_EPOCHS} epoch(s) (red: chosen on validation)", fontsize=10)
    if variants:
        ax.legend(fontsize=8)
    return fig
