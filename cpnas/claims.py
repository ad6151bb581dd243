"""The paper's claims against our finished runs, each with one verdict: the claims table of docs/results.md.

Every claim of *CP-NAS* (IJCAI 2020) that our runs can test becomes one row:
what the paper says, what our runs measured (mean ± sample std over n seeds), and
one verdict from :func:`cpnas.stats.verdict` —

* **supported**: Welch's t-test over seeds significant after Holm's correction
  across the tests of one question, in the paper's direction;
* **contradicted**: significant, in the opposite direction;
* **not resolved**: not significant; the row gives the smallest difference the
  seeds could have detected at 80 % power (from the measured stds);
* **not evidence**: a side's mean top-1 is within 3 points of chance;

or **not measured yet** while a side has fewer than 2 finished seeds. Nothing here is
written by hand: ``python tools/readme_claims.py`` prints the table from the runs
in ``results/<scale>/`` and docs/results.md carries its output (``python tools/gen_docs.py --write``).
"""

from __future__ import annotations

import math
import statistics
from typing import Any, Sequence

from cpnas import ablation as A
from cpnas.errors import CpnasError

NOT_MEASURED = "not measured yet"


def _summary(values: Sequence[float], unit: str = "%") -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.2f} {unit} (n = 1)"
    return f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f} {unit} (n = {len(values)})"


def _verdict_text(v: dict[str, Any]) -> str:
    if v.get("diff") is None:
        return NOT_MEASURED
    return f"**{v['verdict']}** — {A.in_words(v)}; {A.verdict_words(v)}"


def _values(rows: Sequence[dict[str, Any]], study: str, key: str, value: Any, field: str = "top1") -> list[float]:
    return [r[field] for r in rows if r["study"] == study and r[key] == value]


def _judge(rows: Sequence[dict[str, Any]], study: str, tests: Sequence[tuple[Any, Any, int]], by: str = "label",
           chance: float = A.CHANCE_TOP1, measure: str = "top1") -> list[dict[str, Any]]:
    """:func:`cpnas.ablation.judged`, with a side of fewer than 2 seeds read as :data:`NOT_MEASURED`."""
    return [_measured(d) for d in A.judged(rows, study, tests, by=by, chance=chance, measure=measure)]


def _measured(d: dict[str, Any]) -> dict[str, Any]:
    return d if d["n_a"] >= 2 and d["n_b"] >= 2 else {**d, "verdict": NOT_MEASURED}


def _row(artifact: str, paper: str, ours: str, v: dict[str, Any], scale_note: str) -> dict[str, str]:
    return {"claim": artifact, "the paper": paper, "ours": ours, "scale": scale_note, "verdict": _verdict_text(v)}


def table1_claims(rows: Sequence[dict[str, Any]], scale_note: str) -> list[dict[str, str]]:
    """Table 1's three comparisons (:data:`cpnas.ablation.TABLE1_CLAIMS`), Holm over the three."""
    papers = {"CP-NAS (Medium)": "5.72 % vs 8.29 % error", "CP-NAS (Small)": "(no cross-entropy row)",
              "CP-NAS (Large)": "4.73 % vs 6.5 % error"}
    tests = _judge(rows, "table1", [(a, b, s) for a, b, s, _ in A.TABLE1_CLAIMS])
    out = []
    for (a, b, _, claim), v in zip(A.TABLE1_CLAIMS, tests):
        ours = (f"top-1 {a}: {_summary(_values(rows, 'table1', 'label', a))}; "
                f"{b}: {_summary(_values(rows, 'table1', 'label', b))}")
        out.append(_row(f"Table 1: {claim}", papers[a], ours, v, scale_note))
    return out


def fig6_claims(rows: Sequence[dict[str, Any]], scale_note: str) -> list[dict[str, str]]:
    """Fig. 6: the β_P curve's rise and fall (Holm over two), β_P = 2 vs 0.5 under each reading of Eq. 1
    (Holm over two), and CP-NAS against each other strategy (Holm over three)."""
    out = []
    beta = [r for r in rows if r["study"] == "beta"]
    top = max(A.BETAS)  # the largest β_P of Fig. 6, finished or not (not measured yet until it is)
    rise, fall = _judge(beta, "beta", [(A.PAPER_BETA, 0.0, +1), (A.PAPER_BETA, top, +1)], by="beta_p")

    def at(study: str, b: float) -> str:
        return _summary(_values(rows, study, "beta_p", b))

    out.append(_row("Fig. 6 (left): accuracy rises with β_P up to 2 (β_P = 2 vs 0, BNAS†)", "a figure, no numbers",
                    f"β_P = 2: {at('beta', 2.0)}; β_P = 0: {at('beta', 0.0)}", rise, scale_note))
    out.append(_row(f"Fig. 6 (left): and falls beyond (β_P = 2 vs {top:g})", "a figure, no numbers",
                    f"β_P = 2: {at('beta', 2.0)}; β_P = {top:g}: {at('beta', top)}", fall, scale_note))
    # β_P = 2 vs 0.5 under each reading of Eq. 1, Holm over the two readings
    for d in A.gap_judged(rows):
        reading = "printed" if d["study"] == "beta" else "gap_penalty"
        out.append(_row(f"Fig. 6 (left), Eq. 1 read as `{reading}`: β_P = 2 beats β_P = 0.5", "a figure, no numbers",
                        f"β_P = 2: {at(d['study'], 2.0)}; β_P = 0.5: {at(d['study'], 0.5)}", _measured(d),
                        scale_note))
    strat = [r for r in rows if r["study"] == "strategy"]
    ref = A.PAPER_STRATEGY
    others = [s for s in A.STRATEGIES if s != ref]
    for other, v in zip(others, _judge(strat, "strategy", [(ref, o, +1) for o in others])):
        out.append(_row(f"Fig. 6 (right): CP-NAS beats {other}", "a figure, no numbers",
                        f"CP-NAS: {_summary(_values(strat, 'strategy', 'label', ref))}; "
                        f"{other}: {_summary(_values(strat, 'strategy', 'label', other))}", v, scale_note))
    return out


def conv_share_claim(table: Any, scale_note: str) -> dict[str, str]:
    """§3.4: a larger β_P selects fewer convolutions — the conv share of the found cells, β_P = 0 vs 4 over seeds."""
    rows = [] if len(table) == 0 else [{"study": "c", "beta_p": b, "conv_share": 100 * s}  # in % of the kept edges
                                       for b, s in zip(table["beta_p"], table["conv share"])]
    lo, hi = 0.0, max(A.BETAS)
    (v,) = _judge(rows, "c", [(lo, hi, +1)], by="beta_p", chance=-math.inf, measure="conv_share")
    share = lambda b: _summary([r["conv_share"] for r in rows if r["beta_p"] == b], unit="%")  # noqa: E731
    out = _row(f"§3.4: larger β_P selects fewer convolutions (conv share, β_P = 0 vs {hi:g})", "stated, no numbers",
               f"β_P = 0: {share(lo)}; β_P = {hi:g}: {share(hi)} of kept edges", v, scale_note)
    out["verdict"] = out["verdict"].replace(" points", " percentage points of the share")
    return out


def loss_claims(rows: Sequence[dict[str, Any]], scale_note: str) -> list[dict[str, str]]:
    """The CP loss (Eq. 4) against each of its parts on 02's cell, Holm over the four (beyond the paper)."""
    full = "CP loss (Eq. 4)"
    others = [v for v in A.LOSS_VARIANTS if v != full]
    out = []
    for other, v in zip(others, _judge(rows, "loss", [(full, o, +1) for o in others])):
        out.append(_row(f"CP loss (Eq. 3-4) beats {other} (beyond the paper)", "§2.4 proposes the full loss",
                        f"full: {_summary(_values(rows, 'loss', 'label', full))}; "
                        f"{other}: {_summary(_values(rows, 'loss', 'label', other))}", v, scale_note))
    return out


def table2_claim(star: Sequence[float], star2: Sequence[float], scale_note: str) -> dict[str, str]:
    """Table 2: CP-NAS** (preprocessing real) beats CP-NAS* (64.3 vs 66.5 % on ImageNet), Welch over seeds."""
    rows = [{"study": "t2", "label": "**", "top1": v} for v in star2] + \
           [{"study": "t2", "label": "*", "top1": v} for v in star]
    (v,) = _judge(rows, "t2", [("**", "*", +1)])
    return _row("Table 2: CP-NAS** beats CP-NAS*", "66.5 % vs 64.3 % top-1 (ImageNet)",
                f"CP-NAS**: {_summary(list(star2))}; CP-NAS*: {_summary(list(star))}", v, scale_note)


def speed_claim(rows: Sequence[dict[str, Any]], scale_note: str) -> dict[str, str]:
    """"30 % faster than PC-DARTS": each search's seconds per epoch projected to the paper's schedule of its
    strategy (:meth:`~cpnas.strategy_base.Strategy.plan` at ``paper``), the faster-said strategy minus the other
    in minutes (:data:`cpnas.ablation.SPEED_CLAIM`), Welch over seeds (paper: negative)."""
    from cpnas.config import get_config
    from cpnas.strategy_base import search_epochs, title_of

    fast, slow = A.SPEED_CLAIM
    paper = get_config("paper")
    proj = {name: search_epochs(name, paper) for name in A.SPEED_CLAIM}
    strat = [r for r in rows if r["study"] == "strategy" and r["search_epochs"] and r["strategy"] in proj]
    mine = [{"study": "s", "label": r["strategy"],
             "minutes": r["search_wall_clock_s"] / r["search_epochs"] * proj[r["strategy"]] / 60} for r in strat]
    (v,) = _judge(mine, "s", [(fast, slow, -1)], chance=-math.inf, measure="minutes")
    out = _row(f"Search 30 % faster than {title_of(slow)} (per epoch, projected to {proj[fast]} vs {proj[slow]} "
               f"epochs)", "ratio ≈ 0.70 (6 TITAN V)",
               f"{title_of(fast)}: {_summary(_values(mine, 's', 'label', fast, 'minutes'), unit='min')}; "
               f"{title_of(slow)}: {_summary(_values(mine, 's', 'label', slow, 'minutes'), unit='min')}", v,
               scale_note)
    out["verdict"] = out["verdict"].replace(" points", " min")
    return out


def table3_claim(tolerance: float = 0.01) -> dict[str, str]:
    """Table 3's WRN-22 row, analytic (:mod:`cpnas.efficiency`): *supported* when our memory (BN left out,
    as the paper counts) and FLOPs are within ``tolerance`` of the printed 138.27 Mbit and 647.70 M."""
    from cpnas.efficiency import profile_arch
    from cpnas.tables import PAPER_TABLE3

    prof, paper = profile_arch("wrn22").without_norm(), PAPER_TABLE3["WRN-22"]
    err = max(abs(prof.memory_mbit / paper["memory_mbit"] - 1), abs(prof.flops_m / paper["flops_m"] - 1))
    verdict = "supported" if err <= tolerance else "contradicted"
    return {"claim": "Table 3: WRN-22 memory and FLOPs", "the paper": "138.27 Mbit, 647.70 M FLOPs",
            "ours": f"{prof.memory_mbit:.2f} Mbit, {prof.flops_m:.2f} M FLOPs", "scale": "analytic, paper sizes",
            "verdict": f"**{verdict}** — within {100 * err:.2f} % (exact arithmetic: no seeds; the bar is "
                       f"{100 * tolerance:g} %)"}


def collect(scale: str) -> list[dict[str, str]]:
    """Every claim row from the finished runs at ``scale`` (nothing is computed; missing runs read as such)."""
    from cpnas.evaluation import table2_runs
    from cpnas.io import read_json
    from cpnas.runs import METRICS
    from cpnas.tables import default_genotype_path

    t1 = A.load_rows(A.table1_runs(A.default_table1_seeds(scale)), scale)
    study_runs = A.all_runs(default_genotype_path(scale), seeds=A.default_seeds(scale),
                            loss_seeds=A.default_loss_seeds(scale))
    rows = A.load_rows(study_runs, scale)
    note = f"`{scale}` study sizes (cpnas.ablation.ABLATION_SIZES)"
    out = table1_claims(t1, note) + fig6_claims(rows, note)
    out.append(conv_share_claim(A.genotype_table(A.beta_runs(A.default_seeds(scale)), scale), note))
    out += loss_claims(rows, note)
    t2 = {label: [read_json(s.out(scale) / METRICS)["top1"] for s in specs if s.is_done(scale)]
          for label, specs in table2_runs((0, 1, 2)).items()}
    out.append(table2_claim(t2["CP-NAS*"], t2["CP-NAS**"], f"`{scale}` on Imagenette (10 classes)"))
    out.append(speed_claim(rows, note))
    out.append(table3_claim())
    return out


def markdown(claims: Sequence[dict[str, str]]) -> str:
    """The claims as a Markdown table (the one of docs/results.md)."""
    cols = ("claim", "the paper", "ours", "scale", "verdict")
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(c[k].replace("|", "\\|") for k in cols) + " |" for c in claims]
    return "\n".join(lines)


README_START, README_END = "<!-- claims:start -->", "<!-- claims:end -->"
"""Markers around a claims table in a Markdown file (:func:`splice`, :func:`readme_table`); docs/results.md uses
the generated-block markers of ``tools/gen_docs.py`` instead."""


def _readme_parts(readme: str) -> tuple[str, str, str]:
    if readme.count(README_START) != 1 or readme.count(README_END) != 1:
        raise CpnasError(f"README.md needs exactly one {README_START} and one {README_END}")
    head, rest = readme.split(README_START)
    body, tail = rest.split(README_END)
    return head, body.strip("\n"), tail


def readme_table(readme: str) -> str:
    """The claims table as it stands in ``readme`` (between the markers)."""
    return _readme_parts(readme)[1]


def splice(readme: str, table: str) -> str:
    """``readme`` with its claims table replaced by ``table``."""
    head, _, tail = _readme_parts(readme)
    return f"{head}{README_START}\n{table}\n{README_END}{tail}"
