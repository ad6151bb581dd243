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
trained at seeds 0-2 as well, which measures the training noise. Every training runs
eager, so that all cells are trained one way: where ``make bench`` measured compiling
to pay off, ``--compile auto`` would compile, and ``CPNAS_FORMS=compile=eager`` keeps it
off (each run's ``metrics.json`` records which; a test checks the committed ones). The trainings are
runs of :mod:`cpnas.runs` (:func:`specs`, in ``results/<scale>/cellbench/train/<cell>/seed<N>``,
computed by :func:`cpnas.runs.run_all`), so an interrupted benchmark resumes; :func:`frame`
returns the finished ones as one DataFrame, and ``python -m cpnas.cellbench --jobs 2`` computes
what is missing and writes ``tables/cell_benchmark.{csv,md}``.

The benchmark's data (its table and the run JSON) are released under the project's
license (MIT), as its code.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from cpnas import runs
from cpnas.config import get_config
from cpnas.data import DEFAULT_DATASET
from cpnas.data.splits import _mix_seed
from cpnas.genotype import DARTS_V2, Genotype, uniform_cell

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

def uniform_genotype(index: int, seed: int = DRAW_SEED, nodes: int = 4) -> Genotype:
    """Draw ``index`` of the uniform distribution over final cells (:func:`~cpnas.genotype.uniform_cell`),
    from a generator of its own, so adding cells never changes the earlier ones."""
    g = torch.Generator().manual_seed(_mix_seed(seed, index))
    return Genotype.from_dict(uniform_cell(g, nodes).to_dict(), source=f"uniform draw {index}")


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


def searched_name(study: str, search: str, seed: int | str) -> str:
    """The benchmark name of the cell that ``study``'s search folder ``search`` found at ``seed``."""
    return f"{study}-{search}-s{seed}"


def searched_cell(scale: str, study: str, search: str, seed: int | str) -> BenchCell | None:
    """The cell that ``study``'s search folder ``search`` found at ``seed`` (:func:`searched_name`); ``None``
    until that search has finished."""
    from cpnas.genotype import load_genotype

    path = runs.study_dir(scale, study) / "search" / search / f"seed{seed}" / runs.GENOTYPE
    if not path.is_file():
        return None
    return BenchCell(searched_name(study, search, seed), load_genotype(path), f"searched: {study}/{search}")


def searched_cells(scale: str) -> tuple[BenchCell, ...]:
    """Every cell a finished search of the ranking and strategy studies found (:func:`searched_cell`)."""
    cells = []
    for study in SEARCH_STUDIES:
        root = runs.study_dir(scale, study) / "search"
        for path in sorted(root.glob(f"*/seed*/{runs.GENOTYPE}")):
            cells.append(searched_cell(scale, study, path.parent.parent.name, path.parent.name.removeprefix("seed")))
    return tuple(cells)


SEARCH_STUDIES: tuple[str, ...] = ("ranking", "strategies")
"""The studies whose searches' cells join the benchmark (their folders under ``results/<scale>``)."""


def run_spec(cell: BenchCell, seed: int = 0) -> runs.RunSpec:
    """The training of ``cell`` at ``seed``: the scale's preset as it is, cross-entropy, the small size."""
    return runs.RunSpec(f"cellbench-{cell.name}", seed=seed, genotype=cell.genotype, size="small", loss=LOSS,
                     dataset=DEFAULT_DATASET, study=STUDY, folder=cell.name)


def specs(cells: Sequence[BenchCell], *, replicates: bool = True) -> list[runs.RunSpec]:
    """Seed 0 of every cell first, then the other seeds of the :data:`REPLICATED` cells."""
    out = [run_spec(c, 0) for c in cells]
    if replicates:
        out += [run_spec(c, s) for s in SEEDS[1:] for c in cells if c.name in REPLICATED]
    return out


def all_cells(scale: str) -> tuple[BenchCell, ...]:
    """:func:`fixed_cells` and :func:`searched_cells`, one per name."""
    return tuple(runs.first_per_key([*fixed_cells(), *searched_cells(scale)], lambda c: c.name))


def names(todo: Sequence[runs.RunSpec]) -> list[str]:
    """The benchmark's trainings as the log names them: cell and seed."""
    return [f"{s.folder} seed {s.seed}" for s in todo]


COLUMNS = ("architecture", "source", "seed", "genotype", "params", "conv_ops", "input_edge_share", "val_top1",
           "top1", "test_images", "minutes")
"""The benchmark's columns (``tables/cell_benchmark.csv``). ``minutes`` is the training's CPU time where it
recorded one (``cpu_s``: its threads' time, not its waits for a busy core), else its wall-clock."""


def input_edge_share(genotype: Genotype) -> float:
    """The share of a genotype's edges (normal and reduction cell) that start at the cell inputs (nodes 0-1)."""
    from cpnas.genotype import NUM_INPUTS

    edges = [e for kind in ("normal", "reduce") for e in genotype.cell(kind)[0]]
    return sum(i < NUM_INPUTS for _, i, _ in edges) / len(edges) if edges else float("nan")


def conv_ops(genotype: Genotype) -> int:
    """Convolution ops (sep/dil conv) among a genotype's edges, normal and reduction cell."""
    from cpnas.ops import CONV_OPS

    return sum(op in CONV_OPS for kind in ("normal", "reduce") for op, _, _ in genotype.cell(kind)[0])


def row(cell: BenchCell, metrics: dict[str, Any]) -> dict[str, Any]:
    """One finished training as a benchmark row."""
    import json

    return {"architecture": cell.name, "source": cell.source, "seed": metrics["seed"],
            "genotype": json.dumps(cell.genotype.to_dict(), separators=(",", ":")),
            "params": metrics.get("params"), "conv_ops": conv_ops(cell.genotype),
            "input_edge_share": input_edge_share(cell.genotype), "val_top1": metrics.get("val_top1"),
            "top1": metrics["top1"], "test_images": metrics.get("test_images"),
            "minutes": runs.thread_seconds(metrics, f"{cell.name} seed {metrics['seed']}") / 60}


def frame(scale: str = "cpu"):
    """The benchmark as a DataFrame: one row per finished training (:data:`COLUMNS`), in training order.

    The one library call to read it::

        from cpnas.cellbench import frame
        df = frame("cpu")
        df.groupby("architecture").top1.mean().sort_values()
    """
    import pandas as pd

    rows = [row(cell, runs.TRAIN.load(spec.out(scale))) for spec, cell in _specs_with_cells(all_cells(scale))
            if runs.TRAIN.is_finished(spec.out(scale))]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _specs_with_cells(cells: Sequence[BenchCell]) -> list[tuple[runs.RunSpec, BenchCell]]:
    by_name = {c.name: c for c in cells}
    return [(s, by_name[s.folder]) for s in specs(cells)]


def summary(df) -> dict[str, Any]:
    """Mean, std, best and worst top-1 over architectures (each the mean over its seeds), and the
    training noise: the mean within-architecture std over the replicated cells."""
    per = df.groupby("architecture")["top1"].mean()
    reps = df.groupby("architecture")["top1"].agg(["count", "std"])
    reps = reps[reps["count"] > 1]
    return {"architectures": int(per.size), "trainings": int(len(df)), "mean": float(per.mean()),
            "std": float(per.std()), "best": (per.idxmax(), float(per.max())), "worst": (per.idxmin(), float(per.min())),
            "replicated": int(len(reps)), "seed_std": float(reps["std"].mean()) if len(reps) else float("nan")}


def write_table(scale: str) -> str:
    """``tables[/<scale>]/cell_benchmark.{csv,md}`` (:func:`cpnas.paths.artifact_dir`); returns the Markdown."""
    from cpnas.io import write_text
    from cpnas.paths import artifact_dir

    df = frame(scale)
    out = artifact_dir("tables", scale)
    write_text(out / "cell_benchmark.csv", df.to_csv(index=False, float_format="%.4f"))
    if df.empty:
        text = f"Cell benchmark at scale `{scale}`: no finished training yet (`python -m cpnas.cellbench`).\n"
    else:
        s = summary(df)
        shown = df.drop(columns=["genotype"])
        text = (f"Cell benchmark at scale `{scale}` (`python -m cpnas.cellbench`): {s['architectures']} architectures, "
                f"{s['trainings']} trainings, each tested on {int(df.test_images.max()):,} CIFAR-10 test images "
                f"(binomial SE about {100 * (0.25 / df.test_images.max()) ** 0.5:.2f} points at 50 %). "
                f"Top-1 over architectures: mean {s['mean']:.2f}, std {s['std']:.2f}, best {s['best'][0]} "
                f"{s['best'][1]:.2f}, worst {s['worst'][0]} {s['worst'][1]:.2f}"
                + (f"; training noise (mean std over the seeds of {s['replicated']} replicated cells) "
                   f"{s['seed_std']:.2f}" if s["replicated"] else "")
                + ". Minutes: the training's CPU time, or its wall-clock where it predates that record. "
                "Genotypes are in the CSV.\n\n" + shown.to_markdown(index=False, floatfmt=".2f") + "\n")
    write_text(out / "cell_benchmark.md", text)
    return text


def edge_rule_table(scale: str):
    """Input-edge share of every searched cell under ``results/<scale>``, per strategy and final-cell rule.

    The share of kept edges that start at the cell inputs (nodes 0-1). ``rule`` is
    ``lifetime z̄`` for CP-NAS/BNAS† searches whose ``indicator.json`` records how the
    final cell ranked its edges, ``last-round z̄, index ties`` for the older ones (their
    ties were broken by edge index), and the strategy's own derivation otherwise.
    """
    import pandas as pd

    from cpnas.genotype import load_genotype
    from cpnas.io import read_json
    from cpnas.paths import results_dir
    from cpnas.runs import CONFIG, GENOTYPE, INDICATOR

    rows = []
    for path in sorted(results_dir(scale).glob("**/search/*/seed*/" + GENOTYPE)):
        folder = path.parent
        config = read_json(folder / CONFIG) if (folder / CONFIG).is_file() else {}
        strategy = config.get("run", {}).get("strategy", folder.parent.name.split("-")[0])
        indicator = folder / INDICATOR
        if indicator.is_file():
            rule = "lifetime z̄" if "final_cell" in read_json(indicator) else "last-round z̄, index ties"
        else:
            rule = "own derivation"
        rows.append({"strategy": strategy, "rule": rule, "folder": str(folder.relative_to(results_dir(scale))),
                     "input_edge_share": input_edge_share(load_genotype(path))})
    df = pd.DataFrame(rows, columns=["strategy", "rule", "folder", "input_edge_share"])
    if df.empty:
        return df
    return (df.groupby(["strategy", "rule"])["input_edge_share"].agg(["count", "mean", "min", "max"])
            .reset_index())


def main(argv: list[str] | None = None) -> int:
    from cpnas.arguments import name_list, run_study, study_parser

    p = study_parser("python -m cpnas.cellbench", __doc__.split("\n\n")[0], ("cpu", "smoke"))
    p.add_argument("--cells", default=None, help="comma-separated cell names (default: all, in training order)")
    p.add_argument("--no-replicates", action="store_true", help="seed 0 only")
    tables = p.add_mutually_exclusive_group()
    tables.add_argument("--table-only", action="store_true", help="write the table from the finished trainings")
    tables.add_argument("--no-table", action="store_true", help="compute the runs only; leave tables/ as it is")
    args = p.parse_args(argv)

    def work():
        cells = all_cells(args.scale)
        if args.cells:
            chosen = name_list([c.name for c in cells], "cell(s)")(args.cells)
            cells = tuple(c for c in cells if c.name in chosen)
        if not args.table_only:
            todo = specs(cells, replicates=not args.no_replicates)
            runs.run_all(todo, get_config(args.scale), workers=args.jobs, data_root=args.data, desc="cell benchmark",
                         names=names(todo), load=False)
        return "tables/ left as it is (--no-table)" if args.no_table else write_table(args.scale)

    return run_study(p.prog, work)


if __name__ == "__main__":
    sys.exit(main())
