"""Paper tables as pure functions: results in, ``pandas.DataFrame`` out.

:func:`table3` puts the paper's reported Table 3 (memory and FLOPs of CIFAR-10
networks, relative to WRN-22) beside the same quantities measured by
:mod:`cpnas.efficiency` on networks built by this library. The paper's numbers
live in :data:`PAPER_TABLE3` only, and every row taken from it is tagged
``source = "paper"``; rows we computed are tagged ``source = "ours"``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cpnas.config import DEFAULT_SCALE, Config, get_config
from cpnas.errors import CpnasError
from cpnas.genotype import Genotype, load_genotype

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
    from cpnas.paths import results_dir

    return results_dir(scale) / "search" / "cpnas" / "seed0" / "genotype.json"


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
