"""Wall-clock helpers: the one median timer of the benchmarks (:mod:`cpnas.bench`, :mod:`cpnas.compilebench`,
:mod:`cpnas.deploy.measure`) and of the kernel-form choice (:mod:`cpnas.dispatch`)."""

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


def median_times(runs: dict[str, Callable[[], object]], *, reps: int = 5, warmup: int = 1) -> dict[str, float]:
    """Median seconds of each callable of ``runs``, the callables interleaved so a change of load hits all of them."""
    for fn in runs.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(reps):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def load_average() -> list[float] | None:
    """The machine's 1/5/15-minute load averages (other work running beside a benchmark), where known."""
    import os

    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None
