"""The names of the files in a run folder, each defined here once (:mod:`cpnas.runs`).

A search folder holds ``config.json`` (its identity), ``history.json``, ``indicator.json``,
``genotype.json``, ``cost.json`` and, written last, ``complete.json``; a training folder holds
``config.json`` (its run key), ``history.json``, ``checkpoint.pt`` and, written last,
``metrics.json``, with a ``parent/`` training folder when it trained a 32-bit Parent first.
"""

CONFIG = "config.json"
"""A run's identity: the search's config sections, or a training's run key (:func:`cpnas.runs.keys.run_key`)."""

HISTORY = "history.json"
"""Per-epoch records of a search or a training (:class:`cpnas.driver.EpochDriver`)."""

CHECKPOINT = "checkpoint.pt"
"""The resumable state of a search or training (:class:`cpnas.driver.EpochDriver`); not committed."""

INDICATOR = "indicator.json"
"""A search's performance-indicator record (Eq. 1): its scores and signal-to-noise."""

GENOTYPE = "genotype.json"
"""The cell a search found (:meth:`cpnas.genotype.Genotype.save`)."""

COST = "cost.json"
"""A search's wall-clock and epochs (:func:`cpnas.search.search_cost`)."""

COMPLETE = "complete.json"
"""Written last by a search: its presence (and only it) marks the search finished. A search
killed while its artifacts were being written has none, so it is resumed, not loaded."""

METRICS = "metrics.json"
"""Written last by a training (:func:`cpnas.evaluation.train_genotype`): its presence marks the run finished."""

PARENT_DIR = "parent"
"""The sub-folder of a training holding the 32-bit Parent it trained first (the ``H = Parent`` kernel term)."""
