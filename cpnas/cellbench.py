"""A benchmark of 1-bit cells: the ground truth the searches are ranked against.

NAS-Bench-101/201/301 (Ying et al. 2019; Dong & Yang 2020; Siems et al. 2020) are
full precision; no benchmark of 1-bit cells is published. This one holds, for the
DARTS cell space that CP-NAS searches (two inputs per intermediate node, one of the
seven non-``none`` ops on each kept edge, normal and reduction cell):

* :data:`N_UNIFORM` cells drawn uniformly from the space (:func:`uniform_genotype`:
  a seeded draw per index, so adding cells never changes the earlier ones);
* the published DARTS_V2 cell (Liu et al. 2019) and PC-DARTS' CIFAR-10 cell
  (Xu et al. 2020, :data:`PCDARTS_PAPER`);
* every cell a search of the project finds, added by the study that ran it
  (:func:`searched_cells`).

Each cell is trained once at the ``cpu`` training budget (the ``cpu`` preset: 8
cells, C = 12, 3 epochs of 20,000 images, recipe ``adam-bnn``, cross-entropy) and
tested on the 10,000 CIFAR-10 test images; the cells of :data:`REPLICATED` are
trained at seeds 0-2 as well, which measures the training noise. The trainings are
runs of :mod:`cpnas.runs` (``results/<scale>/cellbench/train/<cell>/seed<N>``), so
an interrupted benchmark resumes; :func:`frame` returns the finished ones as one
DataFrame, and ``python -m cpnas.cellbench --jobs 2`` computes what is missing and
writes ``tables/cell_benchmark.{csv,md}``.

The benchmark's data (its table and the run JSON) are released under the project's
license (MIT), as its code.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from cpnas import runs as R
from cpnas.config import get_config
from cpnas.data import DEFAULT_DATASET
from cpnas.data.splits import _mix_seed
from cpnas.errors import CpnasError
from cpnas.genotype import DARTS_V2, NUM_INPUTS, Genotype
from cpnas.ops import PRIMITIVES

log = logging.getLogger(__name__)

STUDY = "cellbench"
"""The benchmark's folder in the results layout (:mod:`cpnas.runs`)."""

N_UNIFORM = 40
"""Uniform draws of the space in the benchmark (``uniform-00`` … ``uniform-39``)."""

DRAW_SEED = 2020
"""The seed of the uniform draws (:func:`uniform_genotype`); fixed, so the list is the same everywhere."""

SEEDS = (0, 1, 2)
"""Training seeds of the replicated cells; every other cell is trained at seed 0."""

LOSS = "ce"
"""The benchmark trains with cross-entropy: it ranks cells, not losses."""

PCDARTS_PAPER = Genotype.from_dict({
    "normal": [["sep_conv_3x3", 1, 2], ["skip_connect", 0, 2], ["sep_conv_3x3", 0, 3], ["dil_conv_3x3", 1, 3],
               ["sep_conv_5x5", 0, 4], ["sep_conv_3x3", 1, 4], ["avg_pool_3x3", 0, 5], ["dil_conv_3x3", 1, 5]],
    "reduce": [["sep_conv_5x5", 1, 2], ["max_pool_3x3", 0, 2], ["sep_conv_5x5", 1, 3], ["sep_conv_5x5", 2, 3],
               ["sep_conv_3x3", 0, 4], ["sep_conv_3x3", 3, 4], ["sep_conv_3x3", 1, 5], ["sep_conv_3x3", 2, 5]],
}, source="PC-DARTS CIFAR-10 cell")
"""PC-DARTS' published CIFAR-10 cell (Xu et al. 2020, Fig. 3 / their ``genotypes.py``)."""

OPS_KEPT = tuple(op for op in PRIMITIVES if op != "none")
"""The seven ops a final cell's edge can carry (DARTS never keeps ``none``)."""


def uniform_genotype(index: int, seed: int = DRAW_SEED, nodes: int = 4) -> Genotype:
    """Draw ``index`` of the uniform distribution over final cells, from its own generator.

    For the normal and then the reduction cell, each intermediate node ``j`` takes two
    distinct inputs uniformly among its ``j`` predecessors and an op uniformly among
    :data:`OPS_KEPT` for each: the distribution of DARTS' final cells when every
    choice is equally likely.
    """
    g = torch.Generator().manual_seed(_mix_seed(seed, index))
    cells: dict[str, list[list[Any]]] = {}
    for kind in ("normal", "reduce"):
        edges = []
        for j in range(NUM_INPUTS, NUM_INPUTS + nodes):
            inputs = sorted(torch.randperm(j, generator=g)[:2].tolist())
            for i in inputs:
                op = OPS_KEPT[int(torch.randint(len(OPS_KEPT), (1,), generator=g))]
                edges.append([op, i, j])
        cells[kind] = edges
    return Genotype.from_dict(cells, source=f"uniform draw {index}")


@dataclass(frozen=True)
class BenchCell:
    """One architecture of the benchmark: its name, genotype and where it comes from."""

    name: str
    genotype: Genotype
    source: str


def fixed_cells(n_uniform: int = N_UNIFORM) -> tuple[BenchCell, ...]:
    """The cells that need no search: DARTS_V2, PC-DARTS' cell and the uniform draws, in training order."""
    return (BenchCell("darts_v2", DARTS_V2, "published: DARTS (Liu et al. 2019)"),
            BenchCell("pcdarts_paper", PCDARTS_PAPER, "published: PC-DARTS (Xu et al. 2020)"),
            *(BenchCell(f"uniform-{i:02d}", uniform_genotype(i), "uniform") for i in range(n_uniform)))


REPLICATED = ("darts_v2", "pcdarts_paper", "uniform-00", "uniform-01", "uniform-02", "uniform-03")
"""Cells trained at every seed of :data:`SEEDS` (the training noise); the others at seed 0."""


def searched_cells(scale: str) -> tuple[BenchCell, ...]:
    """Every cell a finished search of the ranking and strategy studies found, named ``<search>-s<seed>``."""
    from cpnas.genotype import load_genotype

    cells = []
    for study in SEARCH_STUDIES:
        root = R.study_dir(scale, study) / "search"
        for path in sorted(root.glob("*/seed*/genotype.json")):
            search, seed = path.parent.parent.name, path.parent.name.removeprefix("seed")
            cells.append(BenchCell(f"{study}-{search}-s{seed}", load_genotype(path), f"searched: {study}/{search}"))
    return tuple(cells)


SEARCH_STUDIES: tuple[str, ...] = ("ranking", "strategies")
"""The studies whose searches' cells join the benchmark (their folders under ``results/<scale>``)."""


def run_spec(cell: BenchCell, seed: int = 0) -> R.RunSpec:
    """The training of ``cell`` at ``seed``: the scale's preset as it is, cross-entropy, the small size."""
    return R.RunSpec(f"cellbench-{cell.name}", seed=seed, genotype=cell.genotype, size="small", loss=LOSS,
                     dataset=DEFAULT_DATASET, study=STUDY, folder=cell.name)


def specs(cells: Sequence[BenchCell], *, replicates: bool = True) -> list[R.RunSpec]:
    """Seed 0 of every cell first, then the other seeds of the :data:`REPLICATED` cells."""
    out = [run_spec(c, 0) for c in cells]
    if replicates:
        out += [run_spec(c, s) for s in SEEDS[1:] for c in cells if c.name in REPLICATED]
    return out


def all_cells(scale: str) -> tuple[BenchCell, ...]:
    """:func:`fixed_cells` and :func:`searched_cells`, one per name."""
    return tuple(R.first_per_key([*fixed_cells(), *searched_cells(scale)], lambda c: c.name))


def run_all(scale: str, cells: Sequence[BenchCell] | None = None, *, jobs: int = 1, data_root: str | None = None,
            replicates: bool = True) -> None:
    """Train every unfinished run of ``cells`` (default :func:`all_cells`), ``jobs`` one-thread runs at a time."""
    from cpnas.evaluation import run_all as run_all_specs

    cells = all_cells(scale) if cells is None else cells
    todo = [s for s in specs(cells, replicates=replicates) if not s.is_done(scale)]
    if todo:
        run_all_specs(todo, get_config(scale), workers=jobs, data_root=data_root, desc="cell benchmark",
                      names=[f"{s.folder} seed {s.seed}" for s in todo], load=False)


def main(argv: list[str] | None = None) -> int:
    from cpnas.cli.common import name_list, run_study, study_parser

    p = study_parser("python -m cpnas.cellbench", __doc__.split("\n\n")[0], ("cpu", "smoke"))
    p.add_argument("--cells", default=None, help="comma-separated cell names (default: all, in training order)")
    p.add_argument("--no-replicates", action="store_true", help="seed 0 only")
    args = p.parse_args(argv)

    def work():
        cells = all_cells(args.scale)
        if args.cells:
            names = name_list([c.name for c in cells], "cell(s)")(args.cells)
            cells = tuple(c for c in cells if c.name in names)
        run_all(args.scale, cells, jobs=args.jobs, data_root=args.data, replicates=not args.no_replicates)
        return None

    return run_study(p.prog, work)


if __name__ == "__main__":
    sys.exit(main())
