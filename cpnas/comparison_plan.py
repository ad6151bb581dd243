"""The strategy comparison's plan, fixed before any of its runs (:mod:`cpnas.comparison`): its folder,
arms, families of contrasts, seeds, stopping-rule constants, the order of its runs, PC-DARTS's
architecture learning rate at each search budget, and the record of the search budget it runs at.

A module of its own so that the studies built on the comparison's searches
(:mod:`cpnas.comparison_tables`) read the same plan without importing its runner.
"""

from __future__ import annotations

from typing import Any

STUDY = "strategies"
"""The comparison's folder in the results layout (searches: ``results/<scale>/strategies/search/…``)."""

ARMS: dict[str, tuple[str | None, float | None]] = {
    "cpnas": ("cpnas", 2.0), "bnas": ("bnas", None), "pcdarts": ("pcdarts", None), "rs": ("rs", None),
    "random": (None, None),
}
"""Arm → (search strategy, β_P); ``random`` has no search (the benchmark's uniform cells)."""

PRIMARY: tuple[tuple[str, str, int], ...] = (("cpnas", "random", +1), ("cpnas", "rs", +1), ("cpnas", "bnas", +1),
                                             ("cpnas", "pcdarts", +1))
"""The primary family: ``(a, b, paper sign)`` for a − b."""

PC_ARCH_TRAVEL = 6e-4 * 35 * 98
"""PC-DARTS's own architecture schedule (Xu et al., 2020, §4.2): Adam at 6×10⁻⁴ on α for the 35 epochs
after the 15 of warm-up, 98 batches each (25,000 images in batches of 256). The product, learning rate ×
architecture steps, is how far α can travel; the comparison's PC-DARTS gets at least that
(:func:`pcdarts_overrides`)."""

BETAS: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0)
"""Fig. 6 (left): the β_P values searched (0 and 2 are the BNAS† and CP-NAS arms)."""

BETA_FAMILY: tuple[tuple[float, float, int], ...] = ((2.0, 1.0, +1), (2.0, 4.0, +1))
"""Fig. 6 (left) without β_P = 2 vs 0 (in :data:`PRIMARY`): the paper's peak at β_P = 2."""

BETA_SEEDS = 5
"""Search seeds of CP-NAS at each extra β_P of :data:`BETAS` (1 and 4)."""

MIN_SEEDS, MAX_SEEDS = 6, 12
MDE_LIMIT = 3.0
"""Points of top-1: a primary contrast whose Holm-level MDE is above this gets more seeds (up to MAX_SEEDS)."""

ALPHA = 0.05

INTERIM = "interim"
"""The verdict of a contrast whose family the plan has not finished (:func:`cpnas.comparison.waits_for`): its
numbers are shown, its verdict is not given."""

PHASES: tuple[tuple[tuple[str, ...], tuple[float, ...]], ...] = ((("cpnas", "rs"), ()), (("bnas", "pcdarts"), ()),
                                                                 ((), (1.0, 4.0)))
"""The runs in order: ``(arms, extra CP-NAS β_P)`` per phase (:func:`cpnas.comparison.run`)."""

STOP_AFTER_PHASE = 1
"""The phase of :data:`PHASES` after which the stopping rule runs: the first at which every arm of
:data:`PRIMARY` has its first seeds. The primary family is settled before the secondary β_P phase."""


def pcdarts_overrides(budget: str) -> dict[str, Any]:
    """The search size of ``budget`` (:data:`cpnas.search_budgets.BUDGETS`) for the comparison's PC-DARTS, with its
    architecture learning rate raised, where needed, so that learning rate × architecture steps reaches
    PC-DARTS's own schedule (:data:`PC_ARCH_TRAVEL`).

    The budgets give PC-DARTS's supernet the weight training of CP-NAS's Child, so α takes far fewer
    steps than in PC-DARTS's schedule; at the paper's 6×10⁻⁴ it then ends next to uniform, and the
    cells it derives are not searched. Steps: one per batch of the search-train split after the
    warm-up epochs. A budget with as many steps keeps the paper's rate.
    """
    import math

    from cpnas.config import get_config
    from cpnas.pcdarts import PCDartsSettings
    from cpnas.search_budgets import BUDGETS
    from cpnas.runs import apply, overrides
    from cpnas.searchbench import CIFAR_TRAIN

    over = dict(BUDGETS[budget])
    cfg = apply(get_config("cpu"), overrides(over))
    pc = cfg.section(PCDartsSettings)
    steps = (pc.pc_epochs - pc.pc_warmup_epochs) * math.ceil(round(cfg.search.train_fraction * CIFAR_TRAIN)
                                                             / pc.pc_batch_size)
    if steps * pc.pc_arch_lr < PC_ARCH_TRAVEL:
        over["search.pc_arch_lr"] = PC_ARCH_TRAVEL / steps
    return over


CHOICE_FILE = "budget_choice.json"
"""``results/<scale>/strategies/budget_choice.json``: the search-ranking rule's answer as it was when first
applied (:func:`record_choice`). The comparison's runs follow it from then on: the benchmark goes on growing
(replicate seeds change the ground truth of the scored cells), but the budget of runs already made does not
move with it."""


def choice_path(scale: str):
    from cpnas.runs import study_dir

    return study_dir(scale, STUDY) / CHOICE_FILE


def recorded_choice(scale: str) -> dict[str, Any] | None:
    """The recorded budget choice, or ``None`` before the rule was applied."""
    from cpnas.io import read_json

    path = choice_path(scale)
    return read_json(path) if path.is_file() else None


def rule_text(scale: str, fresh: dict[str, Any] | None = None) -> str | None:
    """The recorded choice's reason and what the rule was applied to, or ``None`` before it was applied; with
    ``fresh`` (:func:`cpnas.ranking.choose_budget` on today's runs), also today's reading where it differs."""
    from cpnas.paths import portable

    done = recorded_choice(scale)
    if done is None:
        return None
    text = (f"{done['reason']}; applied once, to the {done['benchmark_trainings']} benchmark trainings then finished "
            f"({portable(choice_path(scale))})")
    if fresh is not None and fresh["reason"] != done["reason"]:
        text += f". On today's benchmark the rule would read: {fresh['reason']}"
    return text


def record_choice(scale: str, choice: dict[str, Any], trainings: int) -> dict[str, Any]:
    """Write ``choice`` (:func:`cpnas.ranking.choose_budget`'s answer) with what it was applied to: the number
    of finished benchmark trainings then, and the code's commit."""
    from cpnas.io import write_json
    from cpnas.paths import git_commit

    record = {**choice, "benchmark_trainings": trainings, "commit": git_commit()}
    write_json(choice_path(scale), record)
    return record
