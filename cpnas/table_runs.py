"""The runs of our rows of Tables 1 and 2 (notebooks 03 and 04), for :func:`cpnas.tables.table1` and
:func:`cpnas.tables.table2`.

Table 1's runs are ablation runs (:class:`cpnas.ablation.Run`, the ablation's sizes), so that its
CP-NAS searches are those of Fig. 6 (right) at the same seeds; Table 2's are
:class:`cpnas.runs.RunSpec` values on ImageNet (Imagenette when ImageNet is absent).
"""

from __future__ import annotations

import os
from typing import Any, Sequence

from cpnas.ablation import Run
from cpnas.runs import TRAIN, RunSpec, SearchSpec


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
    out: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        if TRAIN.is_finished(run.train_dir(scale)):
            out.setdefault(run.label, []).append(TRAIN.load(run.train_dir(scale)))
    return out


TABLE1_CLAIMS: tuple[tuple[str, str, int, str], ...] = (
    ("CP-NAS (Medium)", "BNAS†", +1, "CP-NAS beats BNAS† at a similar size (§3.2: 5.72 % vs 8.29 % error)"),
    ("CP-NAS (Small)", "CP-NAS (Small), cross-entropy only", +1, "the CP loss beats cross-entropy alone (§2.4)"),
    ("CP-NAS (Large)", "CP-NAS (Small)", +1, "the larger network is more accurate (Table 1: 4.73 % vs 6.5 % error)"),
)
"""Table 1's claims as ``(a, b, paper_sign, claim)``: the paper says top-1 of ``a`` > ``b`` when the sign is +1."""


TABLE2_ROWS: dict[str, str] = {"CP-NAS*": "binary*", "CP-NAS**": "binary**"}
"""Table 2's rows of ours (notebook 04): the label and the precision of its ImageNet network (§3.3)."""


def table2_runs(seeds: Sequence[int], *, search_seed: int = 0,
                cifar_root: str | os.PathLike | None = None) -> dict[str, list[RunSpec]]:
    """Table 2 of ours: ``{label: [one RunSpec per training seed]}`` on the ``imagenet`` dataset.

    Every seed trains the cell of the CIFAR-10 ``cpnas`` search at ``search_seed`` (notebook
    02's; the paper searches on ImageNet itself, which a CPU cannot afford): the seeds vary the
    training (initialisation, data order), not the cell. Folders:
    ``results/<scale>/train/imagenet-cpnas-binary-star[-2star]/seed<N>``.
    """
    search = SearchSpec("cpnas", seed=search_seed, data_root=None if cifar_root is None else str(cifar_root))
    names = {"binary*": "imagenet-cpnas-binary-star", "binary**": "imagenet-cpnas-binary-2star"}
    return {label: [RunSpec(names[precision], seed=seed, search=search, dataset="imagenet", precision=precision)
                    for seed in seeds] for label, precision in TABLE2_ROWS.items()}
