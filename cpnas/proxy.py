"""Does the ``cpu`` proxy rank architectures? (issue 11 §5; NAS best practice, Lindauer & Hutter 2020).

The paper does not ask it. Here a set of cells (:data:`CELLS`: found by the
searches of several strategies and seeds, drawn at random, and the published
DARTS_V2) is trained with the ``cpu`` recipe twice: at the ``cpu`` budget and at a
:data:`LONG_FACTOR`× longer one (epochs × 3, a size field). Two rank correlations
(Kendall τ, with a percentile-bootstrap 95 % interval over cells) answer:

* (a) does accuracy at the ``cpu`` budget rank the cells as the longer budget does?
* (b) does the search's own indicator (the mean z̄ of the ops it kept, Eq. 1-2;
  for PC-DARTS its final architecture-split accuracy) rank the cells it found as
  their trained accuracy does?

Searches live where the notebooks keep them (``results/<scale>/search/…``, so
02's CP-NAS search is reused), trainings in ``results/<scale>/proxy/train/…``; all
are cached like every other run; ``python -m cpnas.proxy --jobs 2`` computes the missing ones and
writes ``tables/proxy_validation.{csv,md}``.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cpnas.config import Config, get_config
from cpnas.errors import CpnasError
from cpnas.genotype import DARTS_V2, Genotype
from cpnas.paths import results_dir

log = logging.getLogger(__name__)

LONG_FACTOR = 3


@dataclass(frozen=True)
class ProxyCell:
    """One architecture of the check: from a search (``strategy``, ``seed``) or fixed (``darts_v2``)."""

    strategy: str  # cpnas, bnas, pcdarts, random, or darts_v2
    seed: int = 0

    @property
    def name(self) -> str:
        return "darts_v2" if self.strategy == "darts_v2" else f"{self.strategy}-s{self.seed}"

    @property
    def source(self) -> str:
        return {"darts_v2": "published (Liu et al. 2019)", "random": "random draw"}.get(
            self.strategy, f"{self.strategy} search")


CELLS: tuple[ProxyCell, ...] = (
    ProxyCell("cpnas", 0), ProxyCell("cpnas", 1), ProxyCell("bnas", 0), ProxyCell("pcdarts", 0),
    ProxyCell("random", 0), ProxyCell("random", 1), ProxyCell("random", 2), ProxyCell("random", 3),
    ProxyCell("darts_v2"),
)
"""Nine cells: four searches (two strategies' seeds), four random draws, DARTS_V2."""


def proxy_dir(scale: str) -> Path:
    return results_dir(scale) / "proxy"


def search_dir(scale: str, cell: ProxyCell) -> Path:
    """The search of the notebooks' layout (``results/<scale>/search/<strategy>/seed<N>``): 02's is reused."""
    from cpnas.search import default_search_dir

    return default_search_dir(scale, cell.strategy, cell.seed)


def train_dir(scale: str, cell: ProxyCell, budget: str, seed: int = 0) -> Path:
    return proxy_dir(scale) / "train" / cell.name / budget / f"seed{seed}"


def budget_config(scale: str, budget: str) -> Config:
    """The scale's preset (``cpu``) or its training with :data:`LONG_FACTOR`× the epochs (``long``)."""
    cfg = get_config(scale)
    if budget == "cpu":
        return cfg
    if budget == "long":
        epochs = cfg.cifar.epochs * LONG_FACTOR
        return get_config(scale, {"cifar.epochs": epochs, "cifar.eval_every": epochs})
    raise CpnasError(f"unknown budget {budget!r}; choose cpu or long")


def genotype_of(scale: str, cell: ProxyCell, data_root: str | None = None) -> Genotype:
    """The cell's genotype: DARTS_V2, or the result of its search (run or loaded from the cache)."""
    if cell.strategy == "darts_v2":
        return DARTS_V2
    from cpnas.search import search_or_load

    return search_or_load(cell.strategy, get_config(scale), seed=cell.seed, data_root=data_root,
                          out=search_dir(scale, cell)).genotype


def run_one(scale: str, cell: ProxyCell, budget: str, data_root: str | None = None) -> dict[str, Any]:
    """Search (if needed) and train one cell at one budget (a job of :func:`run_all`)."""
    from cpnas.evaluation import train_or_load

    genotype = genotype_of(scale, cell, data_root)
    return train_or_load(f"proxy-{cell.name}-{budget}", genotype, budget_config(scale, budget), size="small",
                         seed=0, loss="ce", data_root=data_root, out=train_dir(scale, cell, budget))


def run_all(scale: str, cells: tuple[ProxyCell, ...] = CELLS, budgets: tuple[str, ...] = ("cpu", "long"), *,
            jobs: int = 1, data_root: str | None = None) -> None:
    """Every missing run, budget-major (all ``cpu`` runs first), ``jobs`` at a time."""
    from cpnas.parallel import run_jobs

    todo = [(run_one, {"scale": scale, "cell": c, "budget": b, "data_root": data_root})
            for b in budgets for c in cells if not (train_dir(scale, c, b) / "metrics.json").exists()]
    if todo:
        run_jobs(todo, workers=jobs, desc="proxy runs",
                 names=[f"{kw['cell'].name} {kw['budget']}" for _, kw in todo])


def search_indicator(scale: str, cell: ProxyCell) -> dict[str, Any]:
    """What the search said of its own cell: mean z̄ of the kept ops (CP-NAS, BNAS), or PC-DARTS' final score."""
    from cpnas.io import read_json

    out = search_dir(scale, cell)
    if cell.strategy in ("cpnas", "bnas") and (out / "indicator.json").exists():
        ind = read_json(out / "indicator.json")
        last = ind["rounds"][-1]
        kept = [z for kind in ("normal", "reduce") for e, zbar in enumerate(last["mean_z"][kind])
                for op, z in zbar.items() if op != last["removed"][kind][e]]
        history = read_json(out / "history.json")
        return {"search_indicator": statistics.fmean(kept), "search_child_acc": history[-1]["A_C"],
                "median_snr": ind.get("median_snr")}
    if cell.strategy == "pcdarts" and (out / "history.json").exists():
        history = read_json(out / "history.json")
        return {"search_indicator": history[-1]["arch_acc"], "search_child_acc": history[-1]["arch_acc"],
                "median_snr": None}
    return {"search_indicator": None, "search_child_acc": None, "median_snr": None}


def collect(scale: str, cells: tuple[ProxyCell, ...] = CELLS) -> list[dict[str, Any]]:
    """One row per cell with a finished run at either budget."""
    from cpnas.io import read_json

    rows = []
    for cell in cells:
        top = {}
        minutes = {}
        for budget in ("cpu", "long"):
            path = train_dir(scale, cell, budget) / "metrics.json"
            if path.exists():
                m = read_json(path)
                top[budget], minutes[budget] = m["top1"], m["wall_clock_s"] / 60
        if not top:
            continue
        rows.append({"architecture": cell.name, "source": cell.source, "seed": cell.seed,
                     **search_indicator(scale, cell), "top1_cpu": top.get("cpu"), "top1_long": top.get("long"),
                     "minutes_cpu": minutes.get("cpu"), "minutes_long": minutes.get("long")})
    return rows


def kendall(x: list[float], y: list[float], *, resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Kendall τ-b of paired values, its two-sided p-value, and a 95 % percentile-bootstrap interval.

    τ and p are SciPy's ``kendalltau``; the interval resamples cells with
    replacement (paired). With fewer than 3 pairs τ is undefined, with fewer
    than 4 the interval.
    """
    import warnings

    import numpy as np
    from scipy import stats

    n = len(x)
    if n < 3:
        return {"n": n, "tau": None, "p": None, "ci_low": None, "ci_high": None}
    res = stats.kendalltau(x, y)
    ci = (None, None)
    if n >= 4:
        # Percentile bootstrap over cells (paired resampling). A resample that repeats one
        # cell n times has no τ (NaN) and is left out; SciPy's bootstrap would return NaN then.
        rng = np.random.default_rng(seed)
        xs, ys = np.asarray(x, float), np.asarray(y, float)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            taus = [stats.kendalltau(xs[i], ys[i]).statistic for i in rng.integers(0, n, (resamples, n))]
        taus = np.asarray([t for t in taus if np.isfinite(t)])
        if taus.size:
            ci = (float(np.percentile(taus, 2.5)), float(np.percentile(taus, 97.5)))
    return {"n": n, "tau": float(res.statistic), "p": float(res.pvalue), "ci_low": ci[0], "ci_high": ci[1]}


def _num(value: Any) -> bool:
    """A measured number (not None, not NaN: pandas turns missing values into NaN)."""
    return value is not None and value == value


def correlations(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """τ (a) between ``top1_cpu`` and ``top1_long``; (b) between the search indicator and ``top1_cpu``."""
    a = [r for r in rows if _num(r["top1_cpu"]) and _num(r["top1_long"])]
    b = [r for r in rows if _num(r["search_indicator"]) and _num(r["top1_cpu"])]
    return {"(a) cpu budget vs 3× budget": kendall([r["top1_cpu"] for r in a], [r["top1_long"] for r in a]),
            "(b) search indicator vs trained top-1": kendall([r["search_indicator"] for r in b],
                                                             [r["top1_cpu"] for r in b])}


def table(scale: str):
    import pandas as pd

    cols = ["architecture", "source", "seed", "search_indicator", "search_child_acc", "median_snr", "top1_cpu",
            "top1_long", "minutes_cpu", "minutes_long"]
    return pd.DataFrame(collect(scale), columns=cols)


def write_table(scale: str) -> Path:
    """``tables/proxy_validation.{csv,md}``: the rows, then the two τ with their intervals."""
    import pandas as pd

    from cpnas.paths import artifact_dir

    df = table(scale)
    tau = pd.DataFrame([{"comparison": k, **v} for k, v in correlations(df.to_dict("records")).items()])
    from cpnas.io import write_text

    out = artifact_dir("tables", scale)
    write_text(out / "proxy_validation.csv", df.to_csv(index=False, float_format="%.4f"))
    text = (df.to_markdown(index=False, floatfmt=".3f", missingval="–")
            + "\n\nKendall τ-b (95 % percentile bootstrap over cells):\n\n"
            + tau.to_markdown(index=False, floatfmt=".3f", missingval="–") + "\n")
    return write_text(out / "proxy_validation.md", text)


def figure(rows: list[dict[str, Any]]):
    """Left: top-1 at the cpu budget vs 3× longer; right: search indicator vs top-1 (one dot a cell)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.8), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    tau = correlations(rows)
    for ax, (xk, yk), key in ((ax1, ("top1_cpu", "top1_long"), "(a) cpu budget vs 3× budget"),
                              (ax2, ("search_indicator", "top1_cpu"), "(b) search indicator vs trained top-1")):
        pts = [r for r in rows if _num(r[xk]) and _num(r[yk])]
        ax.scatter([r[xk] for r in pts], [r[yk] for r in pts], color="C0")
        for r in pts:
            ax.annotate(r["architecture"], (r[xk], r[yk]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        t = tau[key]
        ci = "" if t["ci_low"] is None else f" [{t['ci_low']:.2f}, {t['ci_high']:.2f}]"
        ax.set_title(f"{key}\nτ = {t['tau']:.2f}{ci}, n = {t['n']}" if t["tau"] is not None
                     else f"{key}\n(fewer than 3 cells)", fontsize=9)
        ax.set_xlabel(xk.replace("_", " "))
        ax.set_ylabel(yk.replace("_", " "))
    ax1.axhline(10, color="grey", lw=0.5, ls=":")
    return fig


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cpnas.proxy", description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", default="cpu", choices=("cpu", "smoke", "paper"))
    p.add_argument("--budgets", default="cpu,long", help="cpu, long or both (cpu,long)")
    p.add_argument("--cells", default=",".join(c.name for c in CELLS), help="comma-separated cell names")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--data", default=None, help="CIFAR-10 root (else CPNAS_CIFAR10 or a download)")
    args = p.parse_args(argv)
    budgets = tuple(b.strip() for b in args.budgets.split(",") if b.strip())
    if not budgets or set(budgets) - {"cpu", "long"}:
        p.error(f"--budgets takes cpu and/or long, got {args.budgets!r}")
    by_name = {c.name: c for c in CELLS}
    names = [n.strip() for n in args.cells.split(",") if n.strip()]
    unknown = [n for n in names if n not in by_name]
    if unknown:
        p.error(f"unknown cell(s) {unknown}; choose from {', '.join(by_name)}")
    if args.jobs < 1:
        p.error("--jobs must be at least 1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        run_all(args.scale, tuple(by_name[n] for n in names), budgets, jobs=args.jobs, data_root=args.data)
    except CpnasError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(write_table(args.scale))
    return 0


if __name__ == "__main__":
    sys.exit(main())
