"""The search budgets of the search-ranking study (:mod:`cpnas.ranking`), which the strategy comparison
also runs at (:mod:`cpnas.comparison`): search size overrides on the ``cpu`` preset, 4× apart in supernet
training (images × epochs per supernet).

A module of its own so that the comparison's plan (:mod:`cpnas.comparison_plan`) reads them without
importing the ranking study, which reads the comparison's recorded budget choice.
"""

from __future__ import annotations

from typing import Any

PC_STUDY = {"search.pc_epochs": 35, "search.pc_warmup_epochs": 10, "search.pc_batch_size": 16}

BUDGETS: dict[str, dict[str, Any]] = {
    # supernet training per supernet: 35 epochs × 250 images
    "study": {"search.layers": 5, "search.train_fraction": 0.005, "search.score_fraction": 0.02,
              "search.calibration_batches": 2, **PC_STUDY},
    # 35 epochs × 1,000 images: the cpu preset (02's search)
    "cpu": {**PC_STUDY},
    # 70 epochs (T = 2) × 2,000 images; half the score images per draw, so z̄ averages as many scored images
    "large": {"search.T": 2, "search.train_fraction": 0.04, "search.score_fraction": 0.1,
              **PC_STUDY, "search.pc_epochs": 70, "search.pc_warmup_epochs": 20},
}
"""Search size overrides on the ``cpu`` preset, cheapest first. PC-DARTS gets the Child's supernet training
(images × epochs), in batches of 16; at its paper's rate α still moves little at the two smaller budgets
(notebook 05), so the strategy comparison raises the rate (:func:`cpnas.comparison_plan.pcdarts_overrides`)."""
