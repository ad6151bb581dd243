"""Table 1 and the CP-loss study, from the strategy comparison's searches (:mod:`cpnas.comparison`).

Written before any of their runs, with the contrasts they are judged by, so that the
analysis cannot follow the data.

**Table 1** (the paper's §3.2). Its rows (:data:`cpnas.table_runs.TABLE1_ROWS`) train the
cells that the comparison's CP-NAS and BNAS† searches found at its budget, search seeds
:data:`TABLE1_SEEDS`; a row's seeds are those searches, each cell trained once (training
seed 0) at the ``cpu`` training budget (the scale's preset, at the row's size):

* CP-NAS (Small), (Medium) and (Large), with the CP loss (Eq. 4);
* CP-NAS (Small), cross-entropy only: the cell's benchmark training itself
  (:func:`cpnas.cellbench.run_spec`: the small size, cross-entropy, seed 0), so the
  benchmark and Table 1 share that run;
* BNAS† at the medium size, as the paper's Table 1 (5.57 M parameters beside CP-NAS (Medium)).

Its contrasts are :data:`cpnas.table_runs.TABLE1_CLAIMS`, one Holm family; the CP loss
against cross-entropy and Large against Small share a cell at each seed and are paired
(:func:`cpnas.stats.pairing`), CP-NAS against BNAS† compares different cells (Welch).

**The CP-loss study.** The variants of :data:`cpnas.ablation.LOSS_VARIANTS` (cross-entropy,
each term of Eq. 3 alone, the full Eq. 4) on one cell, :func:`loss_cell`: of the CP-NAS cells
the comparison found at search seeds ``0 … MIN_SEEDS − 1``, the one with the highest benchmark
top-1 (the lowest seed among equals). Each variant trains it at :data:`LOSS_SEEDS`, the small
size, at the ``cpu`` training budget; where the scale's recipe turns the kernel term off, the
variants that have it use :data:`cpnas.ablation.LOSS_KERNEL_WEIGHT` (as the earlier loss study
did). Its contrasts, one Holm family, are the full loss against each of its parts, paired by seed.

Both need the comparison's searches and the benchmark trainings of the cells they found;
:func:`run` computes what they add (``python -m cpnas.comparison`` runs it last).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from cpnas.comparison_plan import ARMS, MIN_SEEDS, STUDY

TABLE1_SEEDS: tuple[int, ...] = (0, 1, 2)
"""Search seeds of Table 1's rows (the comparison's first three of CP-NAS and of BNAS†)."""

LOSS_SEEDS: tuple[int, ...] = (0, 1, 2, 3, 4)
"""Training seeds of each variant of the CP-loss study."""


def search_folder(scale: str, budget: str, arm: str, seed: int) -> Path:
    """The folder of the comparison's ``arm`` search at ``seed`` and ``budget`` (:func:`cpnas.runs.search_dir`)."""
    from cpnas import runs

    strategy, beta = ARMS[arm]
    return runs.search_dir(scale, strategy, seed, beta, study=STUDY, variant=budget)


def found_cell(scale: str, budget: str, arm: str, seed: int):
    """The benchmark cell (:class:`cpnas.cellbench.BenchCell`) that the comparison's ``arm`` search at ``seed``
    found at ``budget``; ``None`` until that search has finished."""
    from cpnas import runs
    from cpnas.cellbench import searched_cell

    strategy, beta = ARMS[arm]
    return searched_cell(scale, STUDY, runs.search_name(strategy, beta, variant=budget), seed)


def table1_specs(scale: str, budget: str, seeds: Sequence[int] = TABLE1_SEEDS) -> list[tuple[str, int, Any, Any]]:
    """``(row label, search seed, cell, RunSpec)`` of every Table 1 training whose search has finished."""
    from cpnas import cellbench
    from cpnas.ablation import slug
    from cpnas.runs import RunSpec
    from cpnas.table_runs import TABLE1_ROWS

    out = []
    for label, row in TABLE1_ROWS.items():
        for seed in seeds:
            cell = found_cell(scale, budget, row["strategy"], seed)  # its strategy is the comparison's arm
            if cell is None:
                continue
            if row["size"] == "small" and row["loss"] == cellbench.LOSS:
                spec = cellbench.run_spec(cell)  # the benchmark's own training of the cell
            else:
                spec = RunSpec(f"table1-{slug(label)}", seed=0, genotype=cell.genotype, size=row["size"],
                               loss=row["loss"], study=STUDY, folder=f"table1-{slug(label)}-{cell.name}")
            out.append((label, seed, cell, spec))
    return out


def loss_cell(scale: str, budget: str):
    """The CP-loss study's cell (module docstring); ``None`` until every one of those CP-NAS cells is trained."""
    from cpnas.cellbench import frame

    cells = [found_cell(scale, budget, "cpnas", seed) for seed in range(MIN_SEEDS)]
    if any(c is None for c in cells):
        return None
    df = frame(scale)
    top1 = dict(zip(df.architecture[df.seed == 0], df.top1[df.seed == 0])) if not df.empty else {}
    if any(c.name not in top1 for c in cells):
        return None
    return max(cells, key=lambda c: (top1[c.name], -cells.index(c)))


def loss_specs(scale: str, budget: str, seeds: Sequence[int] = LOSS_SEEDS) -> list[tuple[str, int, Any]]:
    """``(variant, seed, RunSpec)`` of the CP-loss study; empty until :func:`loss_cell` is known."""
    from cpnas.ablation import LOSS_VARIANTS, loss_overrides, slug
    from cpnas.runs import RunSpec, overrides

    cell = loss_cell(scale, budget)
    if cell is None:
        return []
    out = []
    for variant, spec in LOSS_VARIANTS.items():
        over = overrides(loss_overrides(scale, spec["loss"], spec["overrides"]))
        for seed in seeds:
            out.append((variant, seed, RunSpec(f"cp-loss-{slug(variant)}", seed=seed, genotype=cell.genotype,
                                               size="small", loss=spec["loss"], overrides=over, study=STUDY,
                                               folder=f"cp-loss-{slug(variant)}-{cell.name}")))
    return out


def table1_rows(scale: str, budget: str) -> list[dict[str, Any]]:
    """The finished Table 1 trainings as rows for :func:`cpnas.claims.table1_claims` (study ``table1``;
    ``seed`` is the search seed, ``genotype`` the cell, so the rows of one cell pair)."""
    return _rows(scale, [("table1", label, seed, cell.name, spec) for label, seed, cell, spec
                         in table1_specs(scale, budget)])


def loss_rows(scale: str, budget: str) -> list[dict[str, Any]]:
    """The finished CP-loss trainings as rows for :func:`cpnas.claims.loss_claims` (study ``loss``)."""
    cell = loss_cell(scale, budget)
    return _rows(scale, [("loss", variant, seed, cell.name, spec) for variant, seed, spec
                         in loss_specs(scale, budget)])


def _rows(scale: str, items: Sequence[tuple[str, str, int, str, Any]]) -> list[dict[str, Any]]:
    from cpnas.runs import TRAIN

    rows = []
    for study, label, seed, cell, spec in items:
        if TRAIN.is_finished(spec.out(scale)):
            m = TRAIN.load(spec.out(scale))
            rows.append({"study": study, "label": label, "seed": seed, "genotype": cell, "top1": m["top1"],
                         "test_error": m["test_error"], "params_m": m.get("params_m"),
                         "test_images": m.get("test_images"), "train_dir": str(spec.out(scale)), "metrics": m,
                         "train_wall_clock_s": m.get("wall_clock_s"), "search_wall_clock_s": None,
                         **{k: m.get(k) for k in ("epochs", "dataset", "train_images", "budget", "scale")}})
    return rows


def trainings_left(scale: str, budget: str) -> tuple[int, float]:
    """``(trainings, small-training equivalents)`` of Table 1 and the CP-loss study still to do, counted
    from the plan (also before their searches finish); a training at another size counts as the square
    of its channel ratio to the small size. The cross-entropy row is the benchmark's, counted there."""
    from cpnas import cellbench
    from cpnas.ablation import LOSS_VARIANTS
    from cpnas.config import get_config
    from cpnas.table_runs import TABLE1_ROWS

    cifar = get_config(scale).cifar
    done = {(label, seed) for label, seed, _, spec in table1_specs(scale, budget) if spec.is_done(scale)}
    n, units = 0, 0.0
    for label, row in TABLE1_ROWS.items():
        if row["size"] == "small" and row["loss"] == cellbench.LOSS:
            continue
        todo = sum((label, seed) not in done for seed in TABLE1_SEEDS)
        n += todo
        units += todo * (getattr(cifar, f"channels_{row['size']}") / cifar.channels_small) ** 2
    loss = len(LOSS_VARIANTS) * len(LOSS_SEEDS) - sum(spec.is_done(scale) for *_, spec in loss_specs(scale, budget))
    return n + loss, units + loss


def run(scale: str, budget: str, *, jobs: int = 1, data_root: Any = None) -> None:
    """Every Table 1 and CP-loss training that the finished searches and benchmark trainings allow."""
    from cpnas.config import get_config
    from cpnas.runs import run_all

    cfg = get_config(scale)
    for specs in ([s for *_, s in table1_specs(scale, budget)], [s for *_, s in loss_specs(scale, budget)]):
        if specs:
            run_all(specs, cfg, workers=jobs, data_root=data_root, desc="Table 1 and the CP-loss study",
                    names=[f"{s.folder} seed {s.seed}" for s in specs], load=False)
