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
from typing import Any, Mapping, Sequence

from cpnas import ablation
from cpnas import stats, table_runs
from cpnas.cells import same_cells
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
    return f"**{v['verdict']}** — {in_words(v)}; {verdict_words(v)}"


def _values(rows: Sequence[dict[str, Any]], study: str, key: str, value: Any, field: str = "top1") -> list[float]:
    return [r[field] for r in rows if r["study"] == study and r[key] == value]


def _judge(rows: Sequence[dict[str, Any]], study: str, tests: Sequence[tuple[Any, Any, int]], by: str = "label",
           chance: float = stats.CHANCE_TOP1, measure: str = "top1") -> list[dict[str, Any]]:
    """:func:`cpnas.stats.judged`, with a side of fewer than 2 seeds read as :data:`NOT_MEASURED`."""
    return [_measured(d) for d in stats.judged(rows, study, tests, by=by, chance=chance, measure=measure)]


def _measured(d: dict[str, Any]) -> dict[str, Any]:
    return d if d["n_a"] >= 2 and d["n_b"] >= 2 else {**d, "verdict": NOT_MEASURED}


def _row(artifact: str, paper: str, ours: str, v: dict[str, Any], scale_note: str) -> dict[str, str]:
    return {"claim": artifact, "the paper": paper, "ours": ours, "scale": scale_note, "verdict": _verdict_text(v)}


def table1_claims(rows: Sequence[dict[str, Any]], scale_note: str) -> list[dict[str, str]]:
    """Table 1's three comparisons (:data:`cpnas.table_runs.TABLE1_CLAIMS`), Holm over the three."""
    papers = {"CP-NAS (Medium)": "5.72 % vs 8.29 % error", "CP-NAS (Small)": "(no cross-entropy row)",
              "CP-NAS (Large)": "4.73 % vs 6.5 % error"}
    tests = _judge(rows, "table1", [(a, b, s) for a, b, s, _ in table_runs.TABLE1_CLAIMS])
    out = []
    for (a, b, _, claim), v in zip(table_runs.TABLE1_CLAIMS, tests):
        ours = (f"top-1 {a}: {_summary(_values(rows, 'table1', 'label', a))}; "
                f"{b}: {_summary(_values(rows, 'table1', 'label', b))}")
        out.append(_row(f"Table 1: {claim}", papers[a], ours, v, scale_note))
    return out


def fig6_claims(rows: Sequence[dict[str, Any]], scale_note: str) -> list[dict[str, str]]:
    """Fig. 6: the β_P curve's rise and fall (Holm over two), β_P = 2 vs 0.5 under each reading of Eq. 1
    (Holm over two), and CP-NAS against each other strategy (Holm over three)."""
    out = []
    beta = [r for r in rows if r["study"] == "beta"]
    top = max(ablation.BETAS)  # the largest β_P of Fig. 6, finished or not (not measured yet until it is)
    rise, fall = _judge(beta, "beta", [(ablation.PAPER_BETA, 0.0, +1), (ablation.PAPER_BETA, top, +1)], by="beta_p")

    def at(study: str, b: float) -> str:
        return _summary(_values(rows, study, "beta_p", b))

    out.append(_row("Fig. 6 (left): accuracy rises with β_P up to 2 (β_P = 2 vs 0, BNAS†)", "a figure, no numbers",
                    f"β_P = 2: {at('beta', 2.0)}; β_P = 0: {at('beta', 0.0)}", rise, scale_note))
    out.append(_row(f"Fig. 6 (left): and falls beyond (β_P = 2 vs {top:g})", "a figure, no numbers",
                    f"β_P = 2: {at('beta', 2.0)}; β_P = {top:g}: {at('beta', top)}", fall, scale_note))
    # β_P = 2 vs 0.5 under each reading of Eq. 1, Holm over the two readings
    for d in gap_judged(rows):
        reading = "printed" if d["study"] == "beta" else "gap_penalty"
        out.append(_row(f"Fig. 6 (left), Eq. 1 read as `{reading}`: β_P = 2 beats β_P = 0.5", "a figure, no numbers",
                        f"β_P = 2: {at(d['study'], 2.0)}; β_P = 0.5: {at(d['study'], 0.5)}", _measured(d),
                        scale_note))
    strat = [r for r in rows if r["study"] == "strategy"]
    ref = ablation.PAPER_STRATEGY
    others = [s for s in ablation.STRATEGIES if s != ref]
    for other, v in zip(others, _judge(strat, "strategy", [(ref, o, +1) for o in others])):
        out.append(_row(f"Fig. 6 (right): CP-NAS beats {other}", "a figure, no numbers",
                        f"CP-NAS: {_summary(_values(strat, 'strategy', 'label', ref))}; "
                        f"{other}: {_summary(_values(strat, 'strategy', 'label', other))}", v, scale_note))
    return out


def conv_share_claim(table: Any, scale_note: str) -> dict[str, str]:
    """§3.4: a larger β_P selects fewer convolutions — the conv share of the found cells, β_P = 0 vs 4 over seeds."""
    rows = [] if len(table) == 0 else [{"study": "c", "beta_p": b, "conv_share": 100 * s}  # in % of the kept edges
                                       for b, s in zip(table["beta_p"], table["conv share"])]
    lo, hi = 0.0, max(ablation.BETAS)
    (v,) = _judge(rows, "c", [(lo, hi, +1)], by="beta_p", chance=-math.inf, measure="conv_share")
    share = lambda b: _summary([r["conv_share"] for r in rows if r["beta_p"] == b], unit="%")  # noqa: E731
    out = _row(f"§3.4: larger β_P selects fewer convolutions (conv share, β_P = 0 vs {hi:g})", "stated, no numbers",
               f"β_P = 0: {share(lo)}; β_P = {hi:g}: {share(hi)} of kept edges", v, scale_note)
    out["verdict"] = out["verdict"].replace(" points", " percentage points of the share")
    return out


def loss_claims(rows: Sequence[dict[str, Any]], scale_note: str) -> list[dict[str, str]]:
    """The CP loss (Eq. 4) against each of its parts on 02's cell, Holm over the four (beyond the paper)."""
    full = "CP loss (Eq. 4)"
    others = [v for v in ablation.LOSS_VARIANTS if v != full]
    out = []
    for other, v in zip(others, _judge(rows, "loss", [(full, o, +1) for o in others])):
        out.append(_row(f"CP loss (Eq. 3-4) beats {other} (beyond the paper)", "§2.4 proposes the full loss",
                        f"full: {_summary(_values(rows, 'loss', 'label', full))}; "
                        f"{other}: {_summary(_values(rows, 'loss', 'label', other))}", v, scale_note))
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


def speed_claim(rows: Sequence[dict[str, Any]], scale_note: str) -> dict[str, str]:
    """"30 % faster than PC-DARTS": each search's seconds per epoch projected to the paper's schedule of its
    strategy (:meth:`~cpnas.strategy_base.Strategy.plan` at ``paper``), the faster-said strategy minus the other
    in minutes (:data:`cpnas.ablation.SPEED_CLAIM`), Welch over seeds (paper: negative)."""
    from cpnas.config import get_config
    from cpnas.strategy_base import search_epochs, title_of

    fast, slow = ablation.SPEED_CLAIM
    paper = get_config("paper")
    proj = {name: search_epochs(name, paper) for name in ablation.SPEED_CLAIM}
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
    from cpnas.cells import genotype_table
    from cpnas.io import read_json
    from cpnas.runs import METRICS
    from cpnas.tables import default_genotype_path

    t1 = ablation.load_rows(table_runs.table1_runs(table_runs.default_table1_seeds(scale)), scale)
    study_runs = ablation.all_runs(default_genotype_path(scale), seeds=ablation.default_seeds(scale),
                            loss_seeds=ablation.default_loss_seeds(scale))
    rows = ablation.load_rows(study_runs, scale)
    budgets = sorted({r["budget"] for r in t1 + rows if r.get("budget")}) or [scale]
    note = (", ".join(f"`{b}`" for b in budgets) + " training budget (cpnas.budgets); searches at the study "
            "sizes (cpnas.ablation.ABLATION_SIZES)")
    out = table1_claims(t1, note) + fig6_claims(rows, note)
    out.append(conv_share_claim(genotype_table(ablation.beta_runs(ablation.default_seeds(scale)), scale), note))
    out += loss_claims(rows, note)
    t2 = {label: {s.seed: read_json(s.out(scale) / METRICS)["top1"] for s in specs if s.is_done(scale)}
          for label, specs in table_runs.table2_runs((0, 1, 2)).items()}
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


def verdict_words(v: dict[str, Any]) -> str:
    """One verdict in words: the label, the Holm-adjusted p, and what the seeds could have detected."""
    if v["verdict"] == "not evidence":
        return "not evidence (a side within 3 points of chance)"
    if v.get("diff") is None:
        return "not measured"
    p = v["p_adjusted"] if v.get("p_adjusted") is not None else v["p"]
    text = f"{v['verdict']} (Holm-adjusted p = {p:.3f})"
    if v["verdict"] == "not resolved" and v.get("mde") is not None:
        text += (f"; these seeds could detect a difference of {v['mde']:.1f} points at 80 % power at the Holm "
                 f"level")
    return text


def kendall_words(t: dict[str, Any], x: str, y: str) -> str:
    """:func:`cpnas.stats.kendall`'s result in words (τ-b, p, the bootstrap interval, n)."""
    if t["tau"] is None:
        return f"Kendall τ-b between {x} and {y}: not enough cells (n = {t['n']})"
    ci = "" if t["ci_low"] is None else f", 95 % bootstrap interval [{t['ci_low']:+.2f}, {t['ci_high']:+.2f}]"
    p = f"= {t['p']:.3f}" if t["p"] >= 0.001 else "< 0.001"
    return f"Kendall τ-b between {x} and {y}: {t['tau']:+.2f}{ci}, p {p} (n = {t['n']})"


def table1_verdicts(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each claim of :data:`table_runs.TABLE1_CLAIMS` judged on the rows of :func:`table1_runs` (Welch over seeds, Holm over
    the three; :func:`cpnas.stats.judged`), with ``claim`` and ``words`` added."""
    rows = [r for r in rows if r["study"] == "table1"]
    present = {r["label"] for r in rows}
    claims = [c for c in table_runs.TABLE1_CLAIMS if c[0] in present and c[1] in present]
    tests = stats.judged(rows, "table1", [(a, b, sign) for a, b, sign, _ in claims])
    return [{**t, "claim": claim, "words": f"{in_words(t)}; {verdict_words(t)}"}
            for (_, _, _, claim), t in zip(claims, tests)]


def beta_verdict(rows: Sequence[dict[str, Any]]) -> str:
    """In words, from the data: does accuracy rise with β_P up to 2 and fall beyond (§3.4)?

    Two Welch tests over seeds, Holm-corrected together: β_P = 2 against β_P = 0 (the
    rise) and against the largest β_P (the fall). Each gets a verdict (supported,
    contradicted, not resolved, or not evidence near chance).
    """
    beta = [r for r in rows if r["study"] == "beta"]
    s = stats.summarize(beta, "beta", by="beta_p")
    if s.empty or len(s) < 3:
        return "Too few β_P values have finished runs to judge the shape of the curve."
    s = s.sort_values("beta_p")
    best = s.loc[s["top1 mean"].idxmax()]
    top = max(ablation.BETAS) if max(ablation.BETAS) in set(s["beta_p"]) else max(s["beta_p"])
    if top <= ablation.PAPER_BETA:
        return "The β_P > 2 runs have not finished yet: the shape of the curve cannot be judged."
    rise, fall = stats.judged(beta, "beta", [(ablation.PAPER_BETA, 0.0, +1), (ablation.PAPER_BETA, top, +1)],
                              by="beta_p")
    labels = {rise["verdict"], fall["verdict"]}
    overall = ("supported" if labels == {"supported"} else "contradicted" if "contradicted" in labels
               else "not evidence" if "not evidence" in labels else "not resolved")
    return (f"Mean top-1 peaks at β_P = {best['beta_p']:g} ({best['top1 mean']:.2f} %). "
            f"The rise (β_P = 2 minus β_P = 0): {in_words(rise)}; {verdict_words(rise)}. "
            f"The fall (β_P = 2 minus β_P = {top:g}): {in_words(fall)}; {verdict_words(fall)}. "
            f"The paper's shape (up to β_P = 2, down beyond): {overall}.")


def strategy_verdict(rows: Sequence[dict[str, Any]]) -> str:
    """In words, from the data: does CP-NAS beat Random, PC-DARTS and BNAS† (Holm over the three), how fast?"""
    strat = [r for r in rows if r["study"] == "strategy"]
    s = stats.summarize(strat, "strategy")
    if s.empty or ablation.PAPER_STRATEGY not in set(s["label"]):
        return "The CP-NAS runs of the strategy study have not finished yet."
    others = [other for other in ablation.STRATEGIES if other != ablation.PAPER_STRATEGY and other in set(s["label"])]
    tests = stats.judged(strat, "strategy", [(ablation.PAPER_STRATEGY, other, +1) for other in others])
    parts = [f"CP-NAS minus {other}: {in_words(d)}; {verdict_words(d)}" for other, d in zip(others, tests)]
    cost = s.set_index("label")["search (min)"]
    speed = ""
    fast, slow = ablation.SPEED_CLAIM
    if cost.get(slow, float("nan")) > 0:  # NaN (no search recorded) compares false
        from cpnas.strategy_base import title_of

        ratio = cost[fast] / cost[slow]
        per_epoch = ablation.search_cost_projection(strat)
        speed = (f" Search wall-clock here: {title_of(fast)} {cost[fast]:.1f} min vs {title_of(slow)} "
                 f"{cost[slow]:.1f} min (ratio {ratio:.2f}, on this scale's schedules: "
                 f"{per_epoch[f'epochs_{fast}']:g} vs {per_epoch[f'epochs_{slow}']:g} epochs). Per epoch, projected "
                 f"to the paper's {per_epoch[f'paper_epochs_{fast}']} vs {per_epoch[f'paper_epochs_{slow}']} epochs: "
                 f"ratio {per_epoch['ratio']:.2f} (the paper reports {title_of(fast)} 30 % faster, a ratio of about "
                 f"0.70).")
    return "; ".join(parts) + "." + speed


def gap_judged(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """β_P = 2 minus β_P = 0.5 under each reading of :data:`cpnas.ablation.READINGS`, Holm-corrected over the two.

    One :func:`cpnas.stats.judged` result per reading (with ``study`` and ``reading`` added); a reading
    without finished runs at both β_P has ``p = None``, which Holm leaves out.
    """
    judged_ = stats.judged_across(rows, [(study, ablation.PAPER_BETA, 0.5, +1) for study, _ in ablation.READINGS],
                                   by="beta_p", chance=stats.CHANCE_TOP1)
    return [{**d, "study": study, "reading": reading} for (study, reading), d in zip(ablation.READINGS, judged_)]


def gap_verdict(rows: Sequence[dict[str, Any]]) -> str:
    """In words: under each reading of Eq. 1, is β_P = 2 better than β_P = 0.5 (Fig. 6's rise)? Holm over the two."""
    done = [d for d in gap_judged(rows) if d["n_a"] and d["n_b"]]
    if not done:
        return "The β_P = 0.5 and 2 runs of both readings have not finished yet."
    return "; ".join(f"{d['reading']}: β_P = 2 minus β_P = 0.5: {in_words(d)}; {verdict_words(d)}"
                     for d in done) + "."


def loss_verdicts(rows: Sequence[dict[str, Any]], study: str = "loss") -> list[dict[str, Any]]:
    """The full CP loss (Eq. 4) against each other variant of one loss study, Holm over the comparisons.

    The paper's direction is +1 throughout (§2.4 proposes the full loss as the better one).
    """
    mine = [r for r in rows if r["study"] == study]
    have = {r["label"] for r in mine}
    full = "CP loss (Eq. 4)"
    others = [v for v in ablation.LOSS_VARIANTS if v != full and v in have]
    if full not in have or not others:
        return []
    tests = stats.judged(mine, study, [(full, other, +1) for other in others])
    return [{**t, "claim": f"CP loss minus {other}", "words": f"{in_words(t)}; {verdict_words(t)}"}
            for other, t in zip(others, tests)]


def same_cells_in_words(table) -> str:
    """:func:`cpnas.cells.same_cells` as sentences for the notebook, with the β_P that coincide at single seeds."""
    groups = same_cells(table)

    def names(g):
        return ", ".join(f"{b:g}" for b in g)

    text = ("Every β_P found different cells for at least one seed." if not groups else
            "; ".join(f"β_P = {names(g)}" for g in groups) + " found the same cells at every seed (Eq. 1 ranked "
            "every edge's ops alike), so their trainings are the same runs: in Fig. 6 these points repeat one result.")
    beta = table[table["beta_p"].notna()] if len(table) else table
    per_seed = []
    for seed, grp in (beta.groupby("seed") if len(beta) else ()):
        for digest, same in grp.groupby("cells"):
            betas = tuple(sorted(float(b) for b in same["beta_p"]))
            if len(betas) > 1 and betas not in groups:
                per_seed.append(f"seed {seed}: β_P = {names(betas)}")
    if per_seed:
        text += " Same cells at single seeds: " + "; ".join(per_seed) + "."
    distinct = beta["cells"].nunique() if len(beta) else 0
    return text + f" In all, {len(beta)} searches found {distinct} distinct architectures."
