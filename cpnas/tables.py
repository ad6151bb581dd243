"""Paper tables as pure functions: results in, ``pandas.DataFrame`` out.

:func:`table3` puts the paper's reported Table 3 (memory and FLOPs of CIFAR-10
networks, relative to WRN-22) beside the same quantities measured by
:mod:`cpnas.efficiency` on networks built by this library. The paper's numbers
live in :data:`PAPER_TABLE3` only, and every row taken from it is tagged
``source = "paper"``; rows we computed are tagged ``source = "ours"``.
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Any, Sequence

from cpnas.budgets import budget_of_metrics
from cpnas.config import Config, get_config
from cpnas.errors import CpnasError
from cpnas.genotype import Genotype, load_genotype
from cpnas.presets import DEFAULT_SCALE

PAPER_TABLE3: dict[str, dict[str, Any]] = {
    # Zhuo, Zhang et al., IJCAI 2020, Table 3 ("Comparison of memory saving and speedup …
    # on CIFAR-10 with respect to WRN-22"), values as printed; params (M) from Table 1.
    "WRN-22": {"params_m": 4.33, "memory_mbit": 138.27, "memory_saving": 1.0, "flops_m": 647.70,
               "speedup": 1.0, "note": ""},
    "BNAS (PCNN, larger)": {"params_m": 4.6, "memory_mbit": 5.12, "memory_saving": 27.0, "flops_m": 300.0,
                            "speedup": 2.16,
                            "note": "printed as ≈5.12 Mbit, ≈27×, ≥300 M FLOPs, ≤2.16× (bounds, not values)"},
    "WRN-22 (BONN)": {"params_m": 4.33, "memory_mbit": 5.71, "memory_saving": 24.19, "flops_m": 17.03,
                      "speedup": 28.03, "note": "speedup as printed; 647.70 / 17.03 = 38.03×"},
    "CP-NAS (Small)": {"params_m": 2.9, "memory_mbit": 3.32, "memory_saving": 41.56, "flops_m": 12.89,
                       "speedup": 50.24, "note": "saving as printed; 138.27 / 3.32 = 41.65×"},
    "CP-NAS (Medium)": {"params_m": 4.4, "memory_mbit": 4.85, "memory_saving": 27.93, "flops_m": 18.30,
                        "speedup": 35.39, "note": "saving as printed; 138.27 / 4.85 = 28.51×"},
    "CP-NAS (Large)": {"params_m": 10.6, "memory_mbit": 11.51, "memory_saving": 12.01, "flops_m": 38.67,
                       "speedup": 16.75, "note": ""},
}
"""The paper's reported Table 3 (and Table 1's parameter counts). Reported values, never ours."""

TABLE3_COLUMNS = ("architecture", "source", "params (M)", "memory (Mbit)", "memory saving", "FLOPs (M)",
                  "speedup", "memory excl. BN (Mbit)", "compare with", "note")

_SIZE_ROWS = {"small": "CP-NAS (Small)", "medium": "CP-NAS (Medium)", "large": "CP-NAS (Large)"}


def default_genotype_path(scale: str = DEFAULT_SCALE) -> Path:
    """Where the CIFAR-10 CP-NAS search (notebook 02, ``make reproduce-fig5``) writes its genotype."""
    from cpnas.runs import GENOTYPE, search_dir

    return search_dir(scale, "cpnas", 0) / GENOTYPE


def resolve_genotype(path: str | os.PathLike | Genotype | None = None, scale: str = DEFAULT_SCALE) -> Genotype:
    """Load the genotype at ``path``, or, when ``path`` is None, the one the CIFAR search wrote.

    A missing search result raises :class:`CpnasError` naming the command that makes it.
    """
    if isinstance(path, Genotype):
        return path
    if path is None:
        default = default_genotype_path(scale)
        if not default.is_file():
            raise CpnasError(f"no searched genotype at {default}; run the CIFAR-10 search first with "
                             f"'make reproduce-fig5 SCALE={scale}', or pass a genotype.json path "
                             f"(notebook parameter GENOTYPE)")
        path = default
    return load_genotype(path)


def _ours_row(architecture: str, prof, prof_no_bn, compare_with: str, note: str) -> dict[str, Any]:
    return {
        "architecture": architecture, "source": "ours",
        "params (M)": round(prof.params_m, 3),
        "memory (Mbit)": round(prof.memory_mbit, 2),
        "memory saving": round(prof.memory_saving(), 2),
        "FLOPs (M)": round(prof.flops_m, 2),
        "speedup": round(prof.speedup(), 2),
        "memory excl. BN (Mbit)": round(prof_no_bn.memory_mbit, 2),
        "compare with": compare_with, "note": note,
    }


def _paper_row(architecture: str) -> dict[str, Any]:
    p = PAPER_TABLE3[architecture]
    return {
        "architecture": architecture, "source": "paper",
        "params (M)": p["params_m"], "memory (Mbit)": p["memory_mbit"], "memory saving": p["memory_saving"],
        "FLOPs (M)": p["flops_m"], "speedup": p["speedup"], "memory excl. BN (Mbit)": None,
        "compare with": architecture, "note": p["note"],
    }


def table3(genotype: Genotype | str | os.PathLike, *, config: Config | None = None,
           genotype_name: str = "searched genotype"):
    """Table 3: memory and FLOPs vs full-precision WRN-22, the paper's rows beside ours.

    Our rows are measured by :mod:`cpnas.efficiency` on networks built by the
    library: WRN-22 (:mod:`cpnas.wrn`), its 1-bit form in two readings (stem and
    classifier real; plus the two 1×1 projection shortcuts real), and the CIFAR-10
    evaluation network of ``genotype`` at the paper's three sizes (C = 56 / 72 /
    112, 10 cells, 1-bit cells, stem and classifier real). The accounting is
    analytic (one shape-only forward pass), so ``config`` defaults to the paper
    preset on any machine. ``memory (Mbit)`` counts BN affine parameters as real;
    ``memory excl. BN (Mbit)`` leaves them out, which is how the paper's numbers
    read (WRN-22: 138.27 Mbit = 4.321 M conv/FC parameters × 32). Ratios of our
    rows are against our WRN-22 (BN counted).

    The paper's rows are copied from :data:`PAPER_TABLE3` as printed
    (``source = "paper"``); ``compare with`` names the paper row each of ours
    corresponds to.
    """
    import pandas as pd

    from cpnas.efficiency import profile_arch, profile_genotype

    genotype = resolve_genotype(genotype)
    cfg = config or get_config("paper")
    rows = [_paper_row("WRN-22"),
            _ours_row("WRN-22", profile_arch("wrn22"), profile_arch("wrn22").without_norm(), "WRN-22",
                      "WRN-22-4, 64-64-128-256 (stem as wide as group 1), full precision"),
            _paper_row("BNAS (PCNN, larger)"),
            _paper_row("WRN-22 (BONN)")]
    for arch, label, note in (
            ("wrn22-binary", "1-bit WRN-22", "binary blocks incl. 1×1 shortcuts; stem conv and FC real"),
            ("wrn22-binary-real-shortcut", "1-bit WRN-22, real shortcuts",
             "binary 3×3 convs; stem conv, FC and 1×1 shortcuts real (Bi-Real reading)")):
        rows.append(_ours_row(label, profile_arch(arch), profile_arch(arch).without_norm(), "WRN-22 (BONN)", note))
    for size, paper_arch in _SIZE_ROWS.items():
        rows.append(_paper_row(paper_arch))
        prof = profile_genotype(genotype, size=size, config=cfg)
        prof_no_bn = prof.without_norm()
        note = (f"{genotype_name}; C={prof.meta['channels']}, {prof.meta['layers']} cells, "
                f"1-bit cells, stem and FC real")
        rows.append(_ours_row(paper_arch, prof, prof_no_bn, paper_arch, note))
    df = pd.DataFrame(rows, columns=list(TABLE3_COLUMNS))
    # Object dtype keeps the paper rows' cell empty (not "nan") in the Markdown table.
    df["memory excl. BN (Mbit)"] = df["memory excl. BN (Mbit)"].astype(object).where(
        df["memory excl. BN (Mbit)"].notna(), None)
    return df


# --- Tables 1 and 2: test error / accuracy of trained networks -------------------------------------

PAPER_SOURCE = "paper (reported)"
"""The ``source`` tag of every row copied from the paper (Tables 1 and 2)."""

PAPER_TABLE1: dict[str, dict[str, Any]] = {
    # Zhuo, Zhang et al., IJCAI 2020, Table 1 ("Test error on CIFAR-10"), values as printed.
    # search cost in GPU days; None where the paper prints "-" (manual designs).
    "WRN-22": {"test_error": 5.04, "params_m": 4.33, "w": 32, "a": 32, "search_cost": None,
               "method": "Manual", "ref": "Zagoruyko et al., 2016"},
    "DARTS": {"test_error": 2.83, "params_m": 3.4, "w": 32, "a": 32, "search_cost": 4.0,
              "method": "Gradient-based", "ref": "Liu et al., 2018b"},
    "PC-DARTS": {"test_error": 2.78, "params_m": 3.5, "w": 32, "a": 32, "search_cost": 0.15,
                 "method": "Gradient-based", "ref": "Xu et al., 2019"},
    "WRN-22 (PCNN)": {"test_error": 5.69, "params_m": 4.33, "w": 1, "a": 32, "search_cost": None,
                      "method": "Manual", "ref": "Gu et al., 2019"},
    "BNAS (PCNN)": {"test_error": 3.94, "params_m": 2.6, "w": 1, "a": 32, "search_cost": 0.09,
                    "method": "Performance-based", "ref": "Chen et al., 2019a"},
    "BNAS (PCNN, larger)": {"test_error": 3.47, "params_m": 4.6, "w": 1, "a": 32, "search_cost": 0.09,
                            "method": "Performance-based", "ref": "Chen et al., 2019a"},
    "WRN-22 (BONN)": {"test_error": 8.07, "params_m": 4.33, "w": 1, "a": 1, "search_cost": None,
                      "method": "Manual", "ref": "Zhao et al., 2019"},
    "BNAS†": {"test_error": 8.29, "params_m": 4.5, "w": 1, "a": 1, "search_cost": 0.09,
              "method": "Performance-based", "ref": "the paper's CP-NAS with β_P = 0"},
    "CP-NAS (Small)": {"test_error": 6.5, "params_m": 2.9, "w": 1, "a": 1, "search_cost": 0.1,
                       "method": "Child-Parent model", "ref": "C = 56"},
    "CP-NAS (Medium)": {"test_error": 5.72, "params_m": 4.4, "w": 1, "a": 1, "search_cost": 0.1,
                        "method": "Child-Parent model", "ref": "C = 72"},
    "CP-NAS (Large)": {"test_error": 4.73, "params_m": 10.6, "w": 1, "a": 1, "search_cost": 0.1,
                       "method": "Child-Parent model", "ref": "C = 112; printed 'CP-NAS (large)'"},
}
"""The paper's reported Table 1 (CIFAR-10). Reported values, never ours."""

PAPER_TABLE2: dict[str, dict[str, Any]] = {
    # Zhuo, Zhang et al., IJCAI 2020, Table 2 ("Test accuracy on ImageNet"), values as printed.
    "ResNet-18": {"top1": 69.3, "top5": 89.2, "params_m": 11.17, "w": 32, "a": 32, "search_cost": None,
                  "method": "Manual", "ref": "Gu et al., 2019"},
    "PNAS": {"top1": 74.2, "top5": 91.9, "params_m": 5.1, "w": 32, "a": 32, "search_cost": 225.0,
             "method": "SMBO", "ref": "Liu et al., 2018a"},
    "DARTS": {"top1": 73.1, "top5": 91.0, "params_m": 4.9, "w": 32, "a": 32, "search_cost": 4.0,
              "method": "Gradient-based", "ref": "Liu et al., 2018b"},
    "PC-DARTS": {"top1": 75.8, "top5": 92.7, "params_m": 5.3, "w": 32, "a": 32, "search_cost": 3.8,
                 "method": "Gradient-based", "ref": "Xu et al., 2019"},
    "ResNet-18 (PCNN, 1/32)": {"top1": 63.5, "top5": 85.1, "params_m": 11.17, "w": 1, "a": 32,
                               "search_cost": None, "method": "Manual",
                               "ref": "Gu et al., 2019; printed 'ResNet-18 (PCNN)'"},
    "BNAS (PCNN)": {"top1": 71.3, "top5": 90.3, "params_m": 6.2, "w": 1, "a": 32, "search_cost": 2.6,
                    "method": "Performance-based", "ref": "Chen et al., 2019a"},
    "ResNet-18 (Bi-real Net)": {"top1": 56.4, "top5": 79.3, "params_m": 11.17, "w": 1, "a": 1,
                                "search_cost": None, "method": "Manual", "ref": "Liu et al., 2018c"},
    "ResNet-18 (PCNN)": {"top1": 57.5, "top5": 80.0, "params_m": 11.17, "w": 1, "a": 1, "search_cost": None,
                         "method": "Manual", "ref": "Gu et al., 2019"},
    "ResNet-18 (BONN)": {"top1": 59.3, "top5": 81.5, "params_m": 11.17, "w": 1, "a": 1, "search_cost": None,
                         "method": "Manual", "ref": "Zhao et al., 2019"},
    "CP-NAS*": {"top1": 64.3, "top5": 85.6, "params_m": 12.5, "w": 1, "a": 1, "search_cost": 2.8,
                "method": "Child-Parent model",
                "ref": "activations of the first layer of each separable conv not binarized"},
    "CP-NAS**": {"top1": 66.5, "top5": 86.8, "params_m": 12.5, "w": 1, "a": 1, "search_cost": 2.8,
                 "method": "Child-Parent model", "ref": "* and the input-node preprocessing activations not binarized"},
}
"""The paper's reported Table 2 (ImageNet). Reported values, never ours."""

TABLE1_COLUMNS = ("architecture", "source", "test error (%)", "test error std (%)", "n", "params (M)", "W", "A", "search cost (GPU days)",
                  "search method", "scale", "dataset", "epochs", "params at paper size (M)",
                  "search wall-clock (h)", "compare with", "note")
TABLE2_COLUMNS = ("architecture", "source", "top-1 (%)", "top-1 std (%)", "top-5 (%)", "n", "params (M)", "W", "A",
                  "search cost (GPU days)", "search method", "scale", "dataset", "epochs",
                  "params at paper size (M)", "search wall-clock (h)", "compare with", "note")

def search_method(strategy: str | None) -> str | None:
    """Table 1's "Search Method" of one of our strategies (the strategy's ``method`` trait)."""
    from cpnas.errors import CpnasError
    from cpnas.strategy_base import get_strategy

    if strategy is None:
        return None
    try:
        return get_strategy(strategy).method or strategy
    except CpnasError:  # a run of a strategy this version no longer has
        return strategy


def _compare_with(label: str, paper: dict[str, Any]) -> str | None:
    """The paper row ``label`` stands beside: itself, else the longest paper label it starts with."""
    if label in paper:
        return label
    prefixes = [p for p in paper if label.startswith(p)]
    return max(prefixes, key=len) if prefixes else None


def _bits(value: Any) -> Any:
    return None if value is None else int(value)


def _what_varies(runs: Sequence[dict[str, Any]]) -> str:
    """What a row's seeds vary: the search and the training, or the training of one searched cell."""
    searches = {(r.get("search") or {}).get("out") for r in runs}
    if len(searches) == 1 and None not in searches:
        return f"training only: every seed trains the cell of {next(iter(searches))}"
    return "search and training"


def _seeds_note(runs: Sequence[dict[str, Any]]) -> str:
    """What a row's mean and std are over: search seeds when its runs name them (``search_seed``: each
    trains the cell one search found), else the runs' seeds (:func:`_what_varies`)."""
    if all(r.get("search_seed") is not None for r in runs):
        searched = ", ".join(str(s) for s in sorted({r["search_seed"] for r in runs}))
        trained = ", ".join(str(s) for s in sorted({r["seed"] for r in runs if r.get("seed") is not None}))
        return (f"; mean and sample std over search seeds {searched} (each found cell trained once, "
                f"training seed {trained})")
    seeds = sorted({r.get("seed") for r in runs if r.get("seed") is not None})
    return f"; mean and sample std over seeds {', '.join(map(str, seeds))} ({_what_varies(runs)})"


def _ours_common(label: str, runs: Sequence[dict[str, Any]], compare_with: str | None) -> dict[str, Any]:
    """The columns of one row of ours, from its runs (one per seed): sizes from the first, costs averaged."""
    m = runs[0]
    search = m.get("search") or {}
    cost = search.get("cost") or {}
    strategy = search.get("strategy")
    budget = budget_of_metrics(m)
    note = (f"{m['dataset_description']}; {budget} budget: C={m['channels']}, {m['layers']} cells, "
            f"{m['image_size']}px, {m['epochs']} epochs on {m['train_images']} training images, tested on "
            f"{m['test_images']}; precision {m['precision']}, loss {m['loss']}"
            + (f" (H = {m['kernel_source']})" if m.get("kernel_source") else "")
            + (f"; search {strategy} on {cost.get('dataset')}, {cost.get('epochs')} epochs"
               f" on {cost.get('device_name')}" if cost else "")
            + (_seeds_note(runs) if len(runs) > 1 else ""))

    def mean_of(values: list[Any], digits: int) -> float | None:
        values = [v for v in values if v is not None]
        return round(statistics.fmean(values), digits) if values else None

    costs = [(r.get("search") or {}).get("cost") or {} for r in runs]
    paper = [(r.get("paper_size") or {}).get("params_m") for r in runs]
    return {
        "architecture": label, "source": "ours", "n": len(runs),
        "params (M)": mean_of([r["params_m"] for r in runs], 3),
        "W": _bits(m.get("weight_bits")), "A": _bits(m.get("activation_bits")),
        "search cost (GPU days)": mean_of([c.get("gpu_days") for c in costs], 3),
        "search method": search_method(strategy),
        "scale": budget, "dataset": m["dataset_description"], "epochs": m["epochs"],
        "params at paper size (M)": mean_of(paper, 3),
        "search wall-clock (h)": mean_of([c.get("wall_clock_h") for c in costs], 3),
        "compare with": compare_with, "note": note,
    }


def _paper_common(label: str, p: dict[str, Any]) -> dict[str, Any]:
    return {"architecture": label, "source": PAPER_SOURCE, "params (M)": p["params_m"], "W": p["w"], "A": p["a"],
            "search cost (GPU days)": p["search_cost"], "search method": p["method"], "scale": "paper",
            "dataset": None, "epochs": None, "params at paper size (M)": p["params_m"],
            "search wall-clock (h)": None, "compare with": label, "note": p["ref"]}


def _interleave(paper_rows: list[dict[str, Any]], ours_rows: list[dict[str, Any]], columns: tuple[str, ...]):
    """Paper rows in the paper's order, each of ours right after the paper row it compares with."""
    import pandas as pd

    rows: list[dict[str, Any]] = []
    placed: set[int] = set()
    for prow in paper_rows:
        rows.append(prow)
        for k, orow in enumerate(ours_rows):
            if orow["compare with"] == prow["architecture"]:
                rows.append(orow)
                placed.add(k)
    rows += [r for k, r in enumerate(ours_rows) if k not in placed]
    df = pd.DataFrame(rows, columns=list(columns))
    return df.astype(object).where(df.notna(), None)


Runs = "dict[str, Any] | Sequence[dict[str, Any]]"
"""One row of ours: the ``metrics.json`` of one training run, or a list of them (one per seed)."""


def _seeds(runs: Any) -> list[dict[str, Any]]:
    runs = [runs] if isinstance(runs, dict) else list(runs)
    if not runs:
        raise ValueError("a row of ours needs at least one run")
    return runs


def _mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample std (n − 1; ``None`` for one value), rounded to 2 decimals."""
    mean = statistics.fmean(values)
    return round(mean, 2), (round(statistics.stdev(values), 2) if len(values) > 1 else None)


def table1(ours: dict[str, Runs] | None = None):
    """Table 1: CIFAR-10 test error, the paper's rows (:data:`PAPER_TABLE1`) beside ours.

    ``ours`` maps a row label to the ``metrics.json`` of a training run
    (:func:`cpnas.runs.train_or_load`), or to a list of them, one per seed
    (:func:`cpnas.table_runs.table1_metrics`): the row then gives the mean test error, its
    sample std and ``n``, e.g. ``{"CP-NAS (Small)": [m0, m1, m2], "BNAS†": [...]}``. Each of our
    rows comes right after the paper row whose label it equals or starts with
    (``compare with``) and says at which scale, on which dataset and for how many
    epochs it was trained; ``params (M)`` is the trained network's (mean over seeds: each
    seed's search may find another cell), ``params at paper size (M)`` the same genotype at
    the paper's C (56 / 72 / 112). Our search cost is in GPU days when the search ran on a GPU,
    else only its wall-clock (hours, mean over seeds). Paper rows are tagged
    ``source = "paper (reported)"``.
    """
    paper_rows = [{**_paper_common(label, p), "test error (%)": p["test_error"]} for label, p in PAPER_TABLE1.items()]
    ours_rows = []
    for label, runs in (ours or {}).items():
        runs = _seeds(runs)
        mean, std = _mean_std([m["test_error"] for m in runs])
        ours_rows.append({**_ours_common(label, runs, _compare_with(label, PAPER_TABLE1)),
                          "test error (%)": mean, "test error std (%)": std})
    return _interleave(paper_rows, ours_rows, TABLE1_COLUMNS)


def table2(ours: dict[str, Runs] | None = None):
    """Table 2: ImageNet top-1 / top-5 accuracy, the paper's rows (:data:`PAPER_TABLE2`) beside ours.

    As :func:`table1` (one run or a list of seeds per row: mean top-1 and top-5, the top-1's
    sample std, ``n``); ``ours`` maps labels such as ``"CP-NAS*"`` to training
    metrics. Our rows name the dataset they were measured on (for the Imagenette
    stand-in: "Imagenette (10 ImageNet classes)", never ImageNet), and
    ``params at paper size (M)`` is the genotype's ImageNet network at C = 102,
    10 cells, 1000 classes (analytic, to compare with the paper's 12.5 M).
    """
    paper_rows = [{**_paper_common(label, p), "top-1 (%)": p["top1"], "top-5 (%)": p["top5"]}
                  for label, p in PAPER_TABLE2.items()]
    ours_rows = []
    for label, runs in (ours or {}).items():
        runs = _seeds(runs)
        top1, std = _mean_std([m["top1"] for m in runs])
        top5 = [m.get("top5") for m in runs]
        ours_rows.append({**_ours_common(label, runs, _compare_with(label, PAPER_TABLE2)),
                          "top-1 (%)": top1, "top-1 std (%)": std,
                          "top-5 (%)": None if None in top5 else _mean_std(top5)[0]})
    return _interleave(paper_rows, ours_rows, TABLE2_COLUMNS)