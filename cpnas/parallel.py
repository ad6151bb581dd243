"""Independent runs in parallel worker processes, one thread each.

These networks are small: a training step is dominated by per-operator overhead, not
by arithmetic, so a second thread speeds one run up far less than a second run in
parallel does (``make bench`` measures both on the machine at hand). Each job is a picklable ``(function, kwargs)`` pair whose function lives at
module level; results come back in the order of ``jobs``.

Executors (``executor=``):

* ``local`` (default) — this machine: a spawned ``multiprocessing`` pool of one-thread
  workers. It stays because on a CPU the point is several one-thread runs side by side
  on one machine with no scheduler; submitit's local executor would do the same through
  a job folder per run and a polling loop, for nothing.
* ``slurm`` — each run a Slurm job through submitit (``pip install cpnas[cluster]``),
  with :class:`SlurmOptions`; results are collected as the jobs end.
* ``submitit-local`` — submitit's local executor (subprocesses, same code path as
  ``slurm``): how the cluster path is tested without a cluster.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from cpnas.errors import CpnasError

log = logging.getLogger(__name__)

Job = tuple[Callable[..., Any], dict[str, Any]]


def _call(args: tuple) -> tuple[int, Any, str | None, float]:
    index, fn, kwargs, threads, *level = args
    import torch

    if level and level[0] is not None:  # a worker process or cluster job logs as its caller does, so
        root = logging.getLogger()           # its log (submitit's job log) carries the run's INFO lines
        if not root.handlers:
            logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
        root.setLevel(level[0])
    if threads:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    try:
        return index, fn(**kwargs), None, time.perf_counter() - t0
    except CpnasError as exc:
        return index, None, str(exc), time.perf_counter() - t0


EXECUTORS = ("local", "slurm", "submitit-local")
POLL_S = 2.0
"""Seconds between two looks at the submitted jobs' states (``slurm`` and ``submitit-local``)."""


@dataclass(frozen=True)
class SlurmOptions:
    """Where and how submitit submits the runs (``slurm`` executor); ``folder`` also holds its logs."""

    folder: str = "results/submitit"
    partition: str | None = None
    time_min: int = 24 * 60
    gpus_per_node: int = 1
    cpus_per_task: int = 8
    mem_gb: int = 32


def run_jobs(jobs: Sequence[Job], *, workers: int = 1, desc: str = "runs",
             names: Sequence[str] | None = None, executor: str = "local",
             slurm: SlurmOptions | None = None) -> list[Any]:
    """Run ``fn(**kwargs)`` for every job; ``workers > 1`` uses that many spawned processes of one thread.

    A job failing with a :class:`~cpnas.errors.CpnasError` does not stop the others;
    after all have ended, one ``CpnasError`` lists every failure. Other exceptions
    propagate at once (a bug, not bad input). ``executor`` chooses where the jobs run
    (module docstring); ``workers`` is the most jobs running at once on every executor (on
    a cluster: submitted at once, the next one as one ends). Workers and jobs log at this
    process's level, so a job's log holds its INFO lines (epochs, accuracies).
    """
    from cpnas.progress import progress

    if executor not in EXECUTORS:
        raise CpnasError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}")
    if workers < 1:
        raise CpnasError(f"workers must be at least 1, got {workers}")
    names = list(names) if names is not None else [getattr(fn, "__name__", "job") for fn, _ in jobs]
    results: list[Any] = [None] * len(jobs)
    failures: list[str] = []
    cluster = executor != "local"
    level = logging.getLogger().getEffectiveLevel()
    work = [(i, fn, kwargs, 0 if cluster else (1 if workers > 1 else 0), level) for i, (fn, kwargs) in enumerate(jobs)]

    def done(index: int, value: Any, err: str | None, seconds: float) -> None:
        if err is None:
            results[index] = value
            log.info("%s finished in %.0f s", names[index], seconds)
        else:
            failures.append(f"{names[index]}: {err}")
            log.error("%s failed: %s", names[index], err)

    if cluster and work:
        ex = make_executor(executor, slurm or SlurmOptions())
        log.info("%d %s to submit with submitit (%s), %d at a time; logs in %s", len(work), desc, executor,
                 workers, (slurm or SlurmOptions()).folder)
        pending, running = list(work), []
        bar = progress(range(len(work)), total=len(work), desc=desc)
        ticks = iter(bar)
        while pending or running:
            while pending and len(running) < workers:  # at most `workers` jobs queued or running at once
                running.append(ex.submit(_call, pending.pop(0)))
            finished = [job for job in running if job.done()]
            if not finished:
                time.sleep(POLL_S)
                continue
            for job in finished:
                running.remove(job)
                next(ticks, None)
                try:
                    done(*job.result())
                except Exception as exc:  # noqa: BLE001 - a job that died (killed, preempted): report, go on
                    failures.append(f"job {job.job_id}: "
                                    f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
        next(ticks, None)
    elif workers > 1 and len(work) > 1:
        import multiprocessing as mp
        import signal
        import threading

        def _terminate(signum, frame):
            raise KeyboardInterrupt(f"signal {signum}")

        # A SIGTERM to this process must also end the workers (leaving the pool's `with` block
        # terminates them); otherwise they would run on as orphans, writing into run folders.
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, _terminate)
        try:
            # spawn: a fresh interpreter per worker (no forked torch thread pools); one task per child
            with mp.get_context("spawn").Pool(min(workers, len(work)), maxtasksperchild=1) as pool:
                for out in progress(pool.imap_unordered(_call, work), total=len(work), desc=desc):
                    done(*out)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
    else:
        for item in progress(work, desc=desc):
            done(*_call(item))
    if failures:
        raise CpnasError(f"{len(failures)} of {len(jobs)} {desc} failed: " + "; ".join(failures))
    return results


def check_executor(kind: str) -> None:
    """Refuse, before any run starts, an executor this machine cannot use (no submitit; no Slurm for ``slurm``)."""
    import shutil

    if kind not in EXECUTORS:
        raise CpnasError(f"unknown executor {kind!r}; choose one of {', '.join(EXECUTORS)}")
    if kind == "local":
        return
    try:
        import submitit  # noqa: F401
    except ModuleNotFoundError:
        raise CpnasError(f"the {kind!r} executor needs submitit: pip install 'cpnas[cluster]' "
                         f"(or pip install submitit)") from None
    if kind == "slurm" and shutil.which("sbatch") is None:
        raise CpnasError("the 'slurm' executor needs Slurm (no sbatch on PATH here): run on a cluster's login "
                         "node, or use --executor local")


def make_executor(kind: str, options: SlurmOptions):
    """A submitit executor: ``slurm`` (a cluster) or ``submitit-local`` (subprocesses here, for tests)."""
    check_executor(kind)
    import submitit
    folder = Path(options.folder)
    if kind == "submitit-local":
        ex = submitit.LocalExecutor(folder=folder)
        ex.update_parameters(timeout_min=options.time_min)
        return ex
    ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
    params: dict[str, Any] = {"timeout_min": options.time_min, "gpus_per_node": options.gpus_per_node,
                              "cpus_per_task": options.cpus_per_task, "mem_gb": options.mem_gb,
                              "tasks_per_node": 1, "nodes": 1}
    if options.partition:
        params["slurm_partition"] = options.partition
    ex.update_parameters(**params)
    return ex


def check_workers_env(env: str | None) -> int | None:
    """The value of ``$CPNAS_WORKERS`` (``env``): None when unset or empty, else a positive integer or an error."""
    if env is None or not env.strip():
        return None
    try:
        value = int(env)
    except ValueError:
        raise CpnasError(f"CPNAS_WORKERS must be a positive integer, got {env!r}") from None
    if value < 1:
        raise CpnasError(f"CPNAS_WORKERS must be a positive integer, got {env!r}")
    return value


def default_workers(device: str = "auto") -> int:
    """Parallel runs to use: ``$CPNAS_WORKERS`` if set, else 1 on a GPU and min(2, CPU cores) on a CPU."""
    import os

    value = check_workers_env(os.environ.get("CPNAS_WORKERS"))
    if value is not None:
        return value
    from cpnas.train import resolve_device

    if resolve_device(device).type != "cpu":
        return 1
    return max(1, min(2, os.cpu_count() or 1))


def check_environment() -> None:
    """Refuse unknown values of the ``CPNAS_*`` variables that choose how runs execute, at start-up.

    ``$CPNAS_LOADER`` (:mod:`cpnas.data.stream`), ``$CPNAS_WORKERS`` (:func:`cpnas.parallel.default_workers`)
    and ``$CPNAS_FORMS`` (:mod:`cpnas.dispatch`): every command checks them, including those that
    would not read them, so a typo is one line at once, never a surprise an hour into a run.
    """
    import os

    from cpnas import dispatch
    from cpnas.data.stream import forced_loader
    from cpnas.parallel import check_workers_env

    forced_loader()
    check_workers_env(os.environ.get("CPNAS_WORKERS"))
    dispatch.forced()
