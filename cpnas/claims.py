"""The paper's claims against our finished runs, each with one verdict: the claims table of docs/results.md.

Every claim of *CP-NAS* (IJCAI 2020) that our runs can test becomes one row:
what the paper says, what our runs measured (mean ± sample std over n seeds or
search seeds), and one verdict from :func:`cpnas.stats.verdict` —

* **supported**: the test (Welch's over found cells; paired by seed where both arms
  trained one cell at the same seeds) significant after Holm's correction across the
  tests of its family, in the paper's direction;
* **contradicted**: significant, in the opposite direction;
* **not resolved**: not significant; the row gives the smallest difference the
  seeds could have detected at 80 % power at the Holm level (from the measured stds);
* **not evidence**: a side's mean top-1 is within 3 points of chance;

or **not measured yet** while a side has fewer than 2 finished seeds; and
**interim** while the plan of the claim's family still adds runs to it (the primary family
until its stopping rule is met, :func:`cpnas.comparison.waits_for`; the others until their
planned seeds are in, :func:`pending`): its numbers are shown, but no verdict.

The search claims come from the strategy comparison at the search budget the ranking
study chose (:mod:`cpnas.comparison`, :mod:`cpnas.comparison_tables`), one Holm family
per question, no contrast in two: Table 1's three claims; the primary family (CP-NAS
against random sampling, random search, BNAS† and PC-DARTS); Fig. 6 (left) (β_P = 2
against 1 and 4); §3.4's convolution share (one Kendall test); the CP loss against each
of its parts; the search speed (one test). Table 2 (Imagenette) and Table 3 (exact
arithmetic) stand apart. Nothing here is written by hand: ``python tools/readme_claims.py``
prints the table from the runs in ``results/<scale>/`` and docs/results.md carries its
output (``python tools/gen_docs.py --write``).
"""

from __future__ import annotations

import math
import statistics
from typing import Any, Mapping, Sequence

from cpnas import ablation
from cpnas import stats, table_runs
from cpnas.comparison_plan import INTERIM
from cpnas.errors import CpnasError

NOT_MEASURED = "not measured yet"


def _summary(values: Sequence[float], unit: str = "%") -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.2f} {unit} (n = 1)"
    return f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f} {unit} (n = {len(values)})"


def _verdict_text(v: dict[str, Any], waits: str | None = None) -> str:
    if v.get("diff") is None or v.get("verdict") == NOT_MEASURED:
        return NOT_MEASURED
    if waits:
        return f"**{INTERIM}** — {in_words(v)}; judged once {waits}"
    return f"**{v['verdict']}** — {in_words(v)}; {verdict_words(v)}"


def _values(rows: Sequence[dict[str, Any]], study: str, key: str, value: Any, field: str = "top1") -> list[float]:
    return [r[field] for r in rows if r["study"] == study and r[key] == value]


def _judge(rows: Sequence[dict[str, Any]], study: str, tests: Sequence[tuple[Any, Any, int]], by: str = "label",
           chance: float = stats.CHANCE_TOP1, measure: str = "top1") -> list[dict[str, Any]]:
    """:func:`cpnas.stats.judged`, with a side of fewer than 2 seeds read as :data:`NOT_MEASURED`."""
    return [_measured(d) for d in stats.judged(rows, study, tests, by=by, chance=chance, measure=measure)]


def _measured(d: dict[str, Any]) -> dict[str, Any]:
    return d if d["n_a"] >= 2 and d["n_b"] >= 2 else {**d, "verdict": NOT_MEASURED}


def _row(artifact: str, paper: str, ours: str, v: dict[str, Any], scale_note: str,
         waits: str | None = None) -> dict[str, str]:
    return {"claim": artifact, "the paper": paper, "ours": ours, "scale": scale_note,
            "verdict": _verdict_text(v, waits)}


def table1_claims(rows: Sequence[dict[str, Any]], scale_note: str, waits: str | None = None
                  ) -> list[dict[str, str]]:
    """Table 1's three comparisons (:data:`cpnas.table_runs.TABLE1_CLAIMS`), Holm over the three."""
    papers = {"CP-NAS (Medium)": "5.72 % vs 8.29 % error", "CP-NAS (Small)": "(no cross-entropy row)",
              "CP-NAS (Large)": "4.73 % vs 6.5 % error"}
    tests = _judge(rows, "table1", [(a, b, s) for a, b, s, _ in table_runs.TABLE1_CLAIMS])
    out = []
    for (a, b, _, claim), v in zip(table_runs.TABLE1_CLAIMS, tests):
        ours = (f"top-1 {a}: {_summary(_values(rows, 'table1', 'label', a))}; "
                f"{b}: {_summary(_values(rows, 'table1', 'label', b))}")
        out.append(_row(f"Table 1: {claim}", papers[a], ours, v, scale_note, waits))
    return out


ARM_TITLES = {"cpnas": "CP-NAS", "bnas": "BNAS†", "pcdarts": "PC-DARTS", "rs": "random search",
              "random": "random sampling"}
"""The strategy comparison's arms (:data:`cpnas.comparison_plan.ARMS`) in prose."""

PRIMARY_CLAIMS: dict[str, tuple[str, str]] = {
    "random": ("Fig. 6 (right): CP-NAS beats random sampling (the benchmark's uniform cells)", "a figure, no numbers"),
    "rs": ("CP-NAS beats random search at its compute (weight sharing; Li & Talwalkar, 2019; beyond the paper)",
           "not compared"),
    "bnas": ("Fig. 6: CP-NAS (β_P = 2) beats BNAS† (β_P = 0), also Fig. 6 (left)'s rise from β_P = 0",
             "a figure, no numbers"),
    "pcdarts": ("Fig. 6 (right): CP-NAS beats PC-DARTS", "a figure, no numbers"),
}
"""The primary family's claims (:func:`strategy_claims`): the arm CP-NAS is compared with → (claim, the paper)."""


def _judged_family(values: Mapping[Any, Sequence[float]], family: Sequence[tuple[Any, Any, int]]
                   ) -> list[dict[str, Any]]:
    from cpnas.comparison import judge_family

    return [_measured(d) for d in judge_family({k: list(v) for k, v in values.items()}, family,
                                                chance=stats.CHANCE_TOP1)]


def strategy_claims(values: Mapping[str, Sequence[float]], scale_note: str, waits: str | None = None
                    ) -> list[dict[str, str]]:
    """The strategy comparison's primary family (:data:`cpnas.comparison_plan.PRIMARY`): CP-NAS against each
    other arm, Welch over the found cells (one per search seed), Holm over the four.

    ``values`` maps an arm to the benchmark top-1s of its cells (:func:`cpnas.comparison.arm_values`).
    """
    from cpnas.comparison_plan import PRIMARY

    out = []
    for (a, b, _), v in zip(PRIMARY, _judged_family(values, PRIMARY)):
        claim, paper = PRIMARY_CLAIMS[b]
        out.append(_row(claim, paper, f"{ARM_TITLES[a]}: {_summary(list(values.get(a, ())))}; {ARM_TITLES[b]}: "
                                      f"{_summary(list(values.get(b, ())))}", v, scale_note, waits))
    return out


def beta_claim(a: float, b: float) -> str:
    """The claim of Fig. 6 (left)'s contrast β_P = ``a`` against ``b`` (:data:`cpnas.comparison_plan.BETA_FAMILY`)."""
    where = "rises to" if b < a else "falls beyond"
    return f"Fig. 6 (left): accuracy {where} β_P = {a:g} (β_P = {a:g} vs {b:g})"


def beta_claims(betas: Mapping[float, Sequence[float]], scale_note: str, waits: str | None = None
                ) -> list[dict[str, str]]:
    """Fig. 6 (left) without β_P = 2 vs 0 (in the primary family): β_P = 2 against 1 and against 4
    (:data:`cpnas.comparison_plan.BETA_FAMILY`), Welch over the found cells, Holm over the two."""
    from cpnas.comparison_plan import BETA_FAMILY

    out = []
    for (a, b, _), v in zip(BETA_FAMILY, _judged_family(betas, BETA_FAMILY)):
        out.append(_row(beta_claim(a, b), "a figure, no numbers",
                        f"β_P = {a:g}: {_summary(list(betas.get(a, ())))}; β_P = {b:g}: "
                        f"{_summary(list(betas.get(b, ())))}", v, scale_note, waits))
    return out


def conv_share_claim(test: Mapping[str, Any], scale_note: str, alpha: float = 0.05, waits: str | None = None
                     ) -> dict[str, str]:
    """§3.4: a larger β_P selects fewer convolutions. ``test`` is :func:`cpnas.comparison.conv_share_test`
    (Kendall τ-b between β_P and the found cells' convolution share, one test): *supported* when τ < 0 at
    p < ``alpha``, *contradicted* when τ > 0 at p < ``alpha``, else *not resolved*."""
    row = {"claim": "§3.4: a larger β_P selects fewer convolutions (Kendall τ-b, β_P against the found cells' "
                    "convolution share)", "the paper": "stated, no numbers", "scale": scale_note}
    if test.get("tau") is None:
        return {**row, "ours": f"{test.get('n', 0)} found cells", "verdict": NOT_MEASURED}
    sig = test["p"] < alpha and test["tau"] != 0
    verdict = ("supported" if test["tau"] < 0 else "contradicted") if sig else "not resolved"
    if waits:
        verdict = INTERIM
    ci = ("" if test.get("ci_low") is None else
          f", 95 % bootstrap interval [{test['ci_low']:+.2f}, {test['ci_high']:+.2f}]")
    return {**row, "ours": f"τ-b = {test['tau']:+.2f} over {test['n']} found cells",
            "verdict": f"**{verdict}** — τ-b = {test['tau']:+.2f}{ci}, p {p_words(test['p'])} (one test, no family)"
                       + (f"; judged once {waits}" if waits else "")}


def loss_claims(rows: Sequence[dict[str, Any]], scale_note: str, waits: str | None = None) -> list[dict[str, str]]:
    """The CP loss (Eq. 4) against each of its parts on the CP-loss study's cell
    (:func:`cpnas.comparison_tables.loss_cell`), paired by training seed, Holm over the four (beyond the paper)."""
    full = "CP loss (Eq. 4)"
    others = [v for v in ablation.LOSS_VARIANTS if v != full]
    out = []
    for other, v in zip(others, _judge(rows, "loss", [(full, o, +1) for o in others])):
        out.append(_row(f"CP loss (Eq. 3-4) beats {other} (beyond the paper)", "§2.4 proposes the full loss",
                        f"full: {_summary(_values(rows, 'loss', 'label', full))}; "
                        f"{other}: {_summary(_values(rows, 'loss', 'label', other))}", v, scale_note, waits))
    return out


def table2_claim(star: Mapping[int, float], star2: Mapping[int, float], scale_note: str) -> dict[str, str]:
    """Table 2: CP-NAS** (preprocessing real) beats CP-NAS* (64.3 vs 66.5 % on ImageNet).

    ``star`` and ``star2`` map a training seed to its top-1. Both variants train one
    cell at the same seeds, so the test is paired by seed where both have the same
    seeds (:func:`cpnas.stats.pairing`), Welch's otherwise.
    """
    rows = [{"study": "t2", "label": label, "seed": seed, "genotype": "one cell", "top1": v}
            for label, top1 in (("**", star2), ("*", star)) for seed, v in top1.items()]
    (v,) = _judge(rows, "t2", [("**", "*", +1)])
    return _row("Table 2: CP-NAS** beats CP-NAS*", "66.5 % vs 64.3 % top-1 (ImageNet)",
                f"CP-NAS**: {_summary(list(star2.values()))}; CP-NAS*: {_summary(list(star.values()))}", v,
                scale_note)


def speed_claim(minutes_per_epoch: Mapping[str, Sequence[float]], scale_note: str, waits: str | None = None
                ) -> dict[str, str]:
    """"30 % faster than PC-DARTS": each search's thread-minutes per epoch (``minutes_per_epoch``, by
    strategy: :func:`cpnas.comparison.search_minutes_per_epoch`) projected to the paper's schedule of its
    strategy (:meth:`~cpnas.strategy_base.Strategy.plan` at ``paper``), the faster-said strategy minus the
    other in minutes (:data:`cpnas.ablation.SPEED_CLAIM`), Welch over search seeds (paper: negative)."""
    from cpnas.config import get_config
    from cpnas.strategy_base import search_epochs, title_of

    fast, slow = ablation.SPEED_CLAIM
    paper = get_config("paper")
    proj = {name: search_epochs(name, paper) for name in ablation.SPEED_CLAIM}
    mine = [{"study": "s", "label": name, "minutes": m * proj[name]}
            for name in ablation.SPEED_CLAIM for m in minutes_per_epoch.get(name, ())]
    (v,) = _judge(mine, "s", [(fast, slow, -1)], chance=-math.inf, measure="minutes")
    out = _row(f"Search 30 % faster than {title_of(slow)} (thread-minutes per epoch, projected to {proj[fast]} vs "
               f"{proj[slow]} epochs)", "ratio ≈ 0.70 (6 TITAN V)",
               f"{title_of(fast)}: {_summary(_values(mine, 's', 'label', fast, 'minutes'), unit='min')}; "
               f"{title_of(slow)}: {_summary(_values(mine, 's', 'label', slow, 'minutes'), unit='min')}", v,
               scale_note, waits)
    out["verdict"] = out["verdict"].replace(" points", " min")
    return out


TABLE3_CLAIM = "Table 3: WRN-22 memory and FLOPs"
"""The claim of :func:`table3_claim`."""


def table3_claim(tolerance: float = 0.01) -> dict[str, str]:
    """Table 3's WRN-22 row, analytic (:mod:`cpnas.efficiency`): *supported* when our memory (BN left out,
    as the paper counts) and FLOPs are within ``tolerance`` of the printed 138.27 Mbit and 647.70 M."""
    from cpnas.efficiency import profile_arch
    from cpnas.tables import PAPER_TABLE3

    prof, paper = profile_arch("wrn22").without_norm(), PAPER_TABLE3["WRN-22"]
    err = max(abs(prof.memory_mbit / paper["memory_mbit"] - 1), abs(prof.flops_m / paper["flops_m"] - 1))
    verdict = "supported" if err <= tolerance else "contradicted"
    return {"claim": TABLE3_CLAIM, "the paper": "138.27 Mbit, 647.70 M FLOPs",
            "ours": f"{prof.memory_mbit:.2f} Mbit, {prof.flops_m:.2f} M FLOPs", "scale": "analytic, paper sizes",
            "verdict": f"**{verdict}** — within {100 * err:.2f} % (exact arithmetic: no seeds; the bar is "
                       f"{100 * tolerance:g} %)"}


def headline_claims() -> frozenset[str]:
    """The claims of the results at a glance: the primary family (:data:`PRIMARY_CLAIMS`), Fig. 6 (left)'s
    β_P family (:func:`beta_claim`) and Table 3 (:func:`table3_claim`)."""
    from cpnas.comparison_plan import BETA_FAMILY

    return frozenset({claim for claim, _ in PRIMARY_CLAIMS.values()}
                     | {beta_claim(a, b) for a, b, _ in BETA_FAMILY} | {TABLE3_CLAIM})


def collect(scale: str) -> list[dict[str, str]]:
    """Every claim row from the finished runs at ``scale`` (nothing is computed; missing runs read as such).

    The search claims come from the strategy comparison (:mod:`cpnas.comparison`) and the studies on its
    cells (:mod:`cpnas.comparison_tables`), at the search budget the ranking study chose; until that budget
    is chosen they read :data:`NOT_MEASURED`, with what the choice waits for in the ``scale`` column.
    """
    from cpnas import comparison, comparison_tables
    from cpnas.io import read_json
    from cpnas.runs import METRICS

    state = comparison.budget_state(scale)
    budget = state["budget"]
    if budget is None:
        note = f"`{scale}` training budget; the search budget is not chosen yet"
        values, betas, conv, speed, t1, loss = {}, {}, {}, {}, [], []
        waits: dict[str, str | None] = {}
    else:
        note = f"`{scale}` training budget; searches at the `{budget}` budget (chosen by the search ranking)"
        values = comparison.arm_values(scale, budget)[0]
        betas = comparison.beta_values(scale, budget)
        conv = comparison.conv_share_test(scale, budget)
        speed = comparison.search_minutes_per_epoch(scale, budget)
        t1 = comparison_tables.table1_rows(scale, budget)
        loss = comparison_tables.loss_rows(scale, budget)
        waits = pending(values, betas, t1, loss)
    out = (table1_claims(t1, note, waits.get("table1")) + strategy_claims(values, note, waits.get("primary"))
           + beta_claims(betas, note, waits.get("beta")))
    out.append(conv_share_claim(conv, note, waits=waits.get("beta")))
    out += loss_claims(loss, note, waits.get("loss"))
    t2 = {label: {s.seed: read_json(s.out(scale) / METRICS)["top1"] for s in specs if s.is_done(scale)}
          for label, specs in table_runs.table2_runs((0, 1, 2)).items()}
    out.append(table2_claim(t2["CP-NAS*"], t2["CP-NAS**"], f"`{scale}` on Imagenette (10 classes)"))
    out.append(speed_claim(speed, note, waits.get("speed")))
    out.append(table3_claim())
    return out


def pending(values: Mapping[str, Sequence[float]], betas: Mapping[float, Sequence[float]],
            table1: Sequence[dict[str, Any]], loss: Sequence[dict[str, Any]]) -> dict[str, str | None]:
    """What each family of the search claims still waits for, in words (``None``: it is judged): the
    primary family its stopping rule, Fig. 6 (left) and §3.4 their planned searches
    (:func:`cpnas.comparison.waits_for`), the search speed the CP-NAS and PC-DARTS searches of the
    primary rule, Table 1 and the CP-loss study their planned trainings (:mod:`cpnas.comparison_tables`)."""
    from cpnas.ablation import LOSS_VARIANTS
    from cpnas.comparison import waits_for
    from cpnas.comparison_tables import LOSS_SEEDS, TABLE1_SEEDS

    wants = waits_for({k: list(v) for k, v in values.items()}, {k: list(v) for k, v in betas.items()})
    primary, beta = wants["primary"], wants["beta"]

    def seeds(want: Mapping[Any, int], title) -> str:  # in a fixed order: the rule's dict follows a set's
        order = sorted(want, key=lambda k: (list(ARM_TITLES).index(k) if k in ARM_TITLES else k))
        return (", ".join(f"{want[k]} {'cells of ' if i == 0 else 'of '}{title(k)}" for i, k in enumerate(order))
                + "; one trained found cell per search seed")

    def trainings(done: int, planned: int) -> str | None:
        return f"its {planned} planned trainings are in ({done} done)" if done < planned else None

    speed = {a: n for a, n in primary.items() if a in ablation.SPEED_CLAIM}
    return {"primary": f"its stopping rule is met (it asks for {seeds(primary, ARM_TITLES.get)})" if primary else None,
            "beta": f"its searches are in ({seeds(beta, lambda b: f'β_P = {b:g}')})" if beta else None,
            "speed": f"the primary family's stopping rule is met ({seeds(speed, ARM_TITLES.get)})" if speed else None,
            "table1": trainings(len(table1), len(table_runs.TABLE1_ROWS) * len(TABLE1_SEEDS)),
            "loss": trainings(len(loss), len(LOSS_VARIANTS) * len(LOSS_SEEDS))}


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


# --------------------------------------------------------------------------- verdicts in words


def in_words(d: dict[str, Any], unit: str = "points") -> str:
    if d["diff"] is None:
        return "not enough seeds to compare"
    if d["diff"] == 0 and d["se"] == 0:
        return "+0.00 points (every seed gave the same accuracy)"
    noise = ("larger than the seed-to-seed noise, before any correction for multiple tests" if stats.significant(d)
             else "within the seed-to-seed noise")
    p = f"= {d['p']:.2f}" if d["p"] >= 0.01 else "< 0.01"
    ci = "" if d.get("ci_low") is None else f", 95 % CI [{d['ci_low']:+.2f}, {d['ci_high']:+.2f}]"
    if d.get("boot_low") is not None:
        ci += f" (bootstrap [{d['boot_low']:+.2f}, {d['boot_high']:+.2f}])"
    return f"{d['diff']:+.2f} {unit}, ± {d['se']:.2f} standard error{ci}, {d.get('test', 'Welch')} p {p} ({noise})"


def p_words(p: float) -> str:
    """A p-value as the tables print it: ``= 0.023``, or ``< 0.001`` below a thousandth (never ``= 0.000``)."""
    return "< 0.001" if p < 0.001 else f"= {p:.3f}"


def verdict_words(v: dict[str, Any]) -> str:
    """One verdict in words: the label, the Holm-adjusted p, and what the seeds could have detected."""
    if v["verdict"] == "not evidence":
        return "not evidence (a side within 3 points of chance)"
    if v.get("diff") is None:
        return "not measured"
    p = v["p_adjusted"] if v.get("p_adjusted") is not None else v["p"]
    text = f"{v['verdict']} (Holm-adjusted p {p_words(p)})"
    if v["verdict"] == "not resolved" and v.get("mde") is not None:
        text += (f"; these seeds could detect a difference of {v['mde']:.1f} points at 80 % power at the Holm "
                 f"level")
    return text


def kendall_words(t: dict[str, Any], x: str, y: str) -> str:
    """:func:`cpnas.stats.kendall`'s result in words (τ-b, p, the bootstrap interval, n)."""
    if t["tau"] is None:
        return f"Kendall τ-b between {x} and {y}: not enough cells (n = {t['n']})"
    ci = "" if t["ci_low"] is None else f", 95 % bootstrap interval [{t['ci_low']:+.2f}, {t['ci_high']:+.2f}]"
    return f"Kendall τ-b between {x} and {y}: {t['tau']:+.2f}{ci}, p {p_words(t['p'])} (n = {t['n']})"
