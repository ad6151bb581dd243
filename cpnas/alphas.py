"""How far a relaxed architecture moved from uniform: PC-DARTS' softmax(α), read from a search's record.

A search whose α never leaves uniform has not searched: its cells are the edge rule's
draws. :func:`alpha_movement` measures the move; :func:`movement_table` lists it for
every finished PC-DARTS search of a scale (:mod:`cpnas.pcdarts` writes ``alphas.json``).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from cpnas.space import CELL_KINDS


def alpha_movement(op_weights: dict[str, Any]) -> dict[str, float]:
    """How far the relaxed architecture moved from uniform, from softmax(α) per cell kind (edges × ops).

    * ``alpha_entropy``: the mean entropy of softmax(α) over edges, in nats;
    * ``alpha_entropy_ratio``: that as a fraction of the uniform's log K (1 = never moved).
      Entropy is quadratic in small deviations, so it stays near 1 while weights move;
    * ``alpha_max_shift``: the largest |softmax(α) − 1/K| over every edge and op, the
      reading that shows a small but real move (0 = never moved).
    """
    p = torch.cat([torch.as_tensor(op_weights[k], dtype=torch.float64) for k in CELL_KINDS])
    k = p.shape[1]
    h = float(-(p * p.clamp_min(1e-300).log()).sum(dim=1).mean())
    return {"alpha_entropy": h, "alpha_entropy_ratio": h / math.log(k),
            "alpha_max_shift": float((p - 1.0 / k).abs().max())}


def movement_table(scale: str):
    """Every finished PC-DARTS search under ``results/<scale>``: how far its softmax(α) moved.

    One row per ``alphas.json`` (written when a search ends): ``study`` (the folder above
    ``search/``; ``-`` for 02's search), ``search``, ``seed`` and :func:`alpha_movement`.
    """
    import pandas as pd

    from cpnas.io import read_json
    from cpnas.paths import results_dir

    root = results_dir(scale)
    rows = []
    for path in sorted(root.rglob("alphas.json")):
        parts = path.parent.relative_to(root).parts
        if len(parts) < 3 or parts[-3] != "search" or not parts[-1].startswith("seed"):
            continue
        study = "/".join(parts[:-3]) or "-"
        rows.append({"study": study, "search": parts[-2], "seed": int(parts[-1].removeprefix("seed")),
                     **alpha_movement(read_json(path)["alphas"])})
    return pd.DataFrame(rows, columns=["study", "search", "seed", "alpha_entropy", "alpha_entropy_ratio",
                                       "alpha_max_shift"])
