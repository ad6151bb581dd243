"""Wall-clock helpers shared by the benchmarks (:mod:`cpnas.bench`, :mod:`cpnas.compilebench`)."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def median_time(fn: Callable[[], object], reps: int = 10, warmup: int = 2) -> float:
    """The median wall-clock (s) of ``reps`` calls of ``fn``, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def load_average() -> list[float] | None:
    """The machine's 1/5/15-minute load averages (other work running beside a benchmark), where known."""
    import os

    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None
