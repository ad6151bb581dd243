"""The CP-NAS indicator (Eq. 1-2), the noise of its scores, and how a sampled path is scored.

* Eq. 1: a sampled op's score ``z = A_C + β_P (A_P − A_C)`` from the accuracies of the
  Child and the Parent path (:func:`indicator_score`; ``gap_penalty`` reads it with the
  opposite sign of the gap), and the standard error the score split's size implies
  (:func:`indicator_noise`, :func:`round_noise`);
* Eq. 2: the indicator ``e(o) = softmax_edge(z̄)`` (:func:`edge_indicator`), and the lifetime
  z̄ of every op over the rounds of Alg. 1 (:func:`lifetime_zbar`);
* A_C and A_P: the top-1 of a path of a weight-sharing supernet after its BN statistics are
  re-estimated (:func:`score_path`), a genotype as such a path (:func:`path_of`).

The strategies that score paths (:mod:`cpnas.strategies`, :mod:`cpnas.randomsearch`) use them.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from cpnas.errors import CpnasError
from cpnas.genotype import Genotype, cell_edges
from cpnas.space import CELL_KINDS, SampledPath
from cpnas.train import evaluate, recalibrate_bn


INDICATORS = ("printed", "gap_penalty")


def indicator_coefficients(beta_p: float, indicator: str = "printed") -> tuple[float, float]:
    """``(c_C, c_P)`` with ``z = c_C·A_C + c_P·A_P`` for a reading of Eq. 1.

    ``printed``: ``z = A_C + β_P(A_P − A_C) = (1 − β_P)A_C + β_P A_P``;
    ``gap_penalty``: ``z = A_C − β_P(A_P − A_C) = (1 + β_P)A_C − β_P A_P``, the
    reading of the text's "performance loss" and of §3.4 (a larger β_P keeps
    fewer convolutions).
    """
    if indicator == "printed":
        return 1.0 - beta_p, beta_p
    if indicator == "gap_penalty":
        return 1.0 + beta_p, -beta_p
    raise CpnasError(f"unknown search.indicator {indicator!r}; choose one of {', '.join(INDICATORS)}")


def indicator_score(a_c: float, a_p: float, beta_p: float, indicator: str = "printed") -> float:
    """Eq. 1: ``z = A_C + β_P (A_P − A_C)`` as printed (or its ``gap_penalty`` reading)."""
    if indicator == "printed":  # the printed form, evaluated as printed
        return a_c + beta_p * (a_p - a_c)
    c_c, c_p = indicator_coefficients(beta_p, indicator)
    return c_c * a_c + c_p * a_p


def indicator_noise(a_c: float, a_p: float | None, n: int, beta_p: float, indicator: str = "printed") -> float:
    """The standard error of z that the score split's size alone implies.

    A_C and A_P are accuracies on ``n`` images, each with binomial standard error
    ``sqrt(A(1 − A)/n)``; Eq. 1 combines them linearly, so (treating the two as
    independent) ``SE(z) = sqrt(c_C² SE(A_C)² + c_P² SE(A_P)²)``. Without a Parent
    (β_P = 0) only the Child's term remains.
    """
    if n <= 0:
        return float("nan")
    c_c, c_p = indicator_coefficients(beta_p, indicator)
    var = c_c ** 2 * a_c * (1 - a_c) / n
    if a_p is not None:
        var += c_p ** 2 * a_p * (1 - a_p) / n
    return var ** 0.5


def round_noise(draws: list[dict[str, Any]], beta_p: float, indicator: str = "printed") -> dict[str, Any]:
    """Signal-to-noise of one round of Alg. 1: spread of z over its draws vs the split's noise.

    ``z_std`` is the sample standard deviation of z over the round's draws (each
    draw a whole sampled network); ``z_se`` is :func:`indicator_noise` at the
    round's mean A_C and A_P; ``snr = z_std / z_se``. An ``snr`` near 1 means the
    draws differ no more than re-scoring one network on another split of the same
    size would.
    """
    import statistics

    if len(draws) < 2:
        return {"draws": len(draws), "z_std": None, "z_se": None, "snr": None}
    zs = [d["z"] for d in draws]
    a_c = statistics.fmean(d["A_C"] for d in draws)
    a_ps = [d["A_P"] for d in draws if d.get("A_P") is not None]
    a_p = statistics.fmean(a_ps) if a_ps else None
    n = min(d["n"] for d in draws)
    se = indicator_noise(a_c, a_p, n, beta_p, indicator)
    std = statistics.stdev(zs)
    return {"draws": len(draws), "z_std": std, "z_se": se, "snr": std / se if se > 0 else None,
            "mean_A_C": a_c, "mean_A_P": a_p, "score_images": n}


def score_path(forward: Callable, net: torch.nn.Module, loader: Any, calibration: list, *,
               device: torch.device, desc: str = "score") -> dict[str, Any]:
    """Top-1 of a sampled path: BN statistics re-estimated on ``calibration``, then an eval-mode pass.

    Data-parallel (:mod:`cpnas.distributed`): ``loader`` is this rank's shard of the score
    split and :func:`~cpnas.train.evaluate` sums the correct counts over ranks, so every
    rank gets the same A_C, A_P and takes the same removal decisions (Alg. 1 line 10).
    """
    recalibrate_bn(forward, [net], calibration, device=device)
    return evaluate(forward, loader, device=device, modules=[net], train_mode_bn=False, topk=(1,), desc=desc)


def first_images(loader: Any, max_images: int | None) -> Any:
    """The first batches of ``loader`` that hold ``max_images`` images (all of it for ``None``), read once."""
    import itertools
    import math

    if max_images is None:
        return loader
    batch = getattr(loader, "batch_size", None) or 1
    return list(itertools.islice(loader, max(1, math.ceil(max_images / batch))))


def path_of(genotype: Genotype, nodes: int = 4) -> SampledPath:
    """The supernet path that runs ``genotype``: its op on each of its edges, ``none`` on the others."""
    index = {edge: k for k, edge in enumerate(cell_edges(nodes))}
    cells = []
    for kind in CELL_KINDS:
        ops = ["none"] * len(index)
        edges, _ = genotype.cell(kind)
        for op, i, j in edges:
            if (i, j) not in index:
                raise ValueError(f"{kind} edge {i}->{j} is not an edge of the {nodes}-node cell")
            ops[index[(i, j)]] = op
        cells.append(tuple(ops))
    return SampledPath(*cells)


def lifetime_zbar(rounds: list[dict[str, Any]], kind: str) -> list[dict[str, float]]:
    """Per edge, every op's mean z over all draws that contained it, across the rounds of Alg. 1.

    Every op left on an edge is drawn exactly T times per round, so this is the mean over
    the rounds it lived through of that round's z̄ (``rounds[r]["mean_z"]``).
    """
    if not rounds:
        raise ValueError("no finished round: the lifetime z̄ needs at least one")
    n_edges = len(rounds[0]["mean_z"][kind])
    out: list[dict[str, float]] = []
    for e in range(n_edges):
        values: dict[str, list[float]] = {}
        for r in rounds:
            for op, z in r["mean_z"][kind][e].items():
                values.setdefault(op, []).append(float(z))
        out.append({op: sum(v) / len(v) for op, v in values.items()})
    return out


def edge_indicator(mean_z: dict[str, float]) -> dict[str, float]:
    """Eq. 2: ``e(o_k) = exp(z̄_k) / Σ_k' exp(z̄_k')`` over the ops left on one edge."""
    ops = list(mean_z)
    probs = torch.softmax(torch.tensor([mean_z[o] for o in ops], dtype=torch.float64), dim=0).tolist()
    return dict(zip(ops, probs))
