"""argparse types and the options every study driver shares (``python -m cpnas.ablation``, ``cpnas.proxy``,
``cpnas.recipe``, ``cpnas.cellbench``, ``cpnas.ranking``); the ``cpnas`` command's subcommands use them too."""

from __future__ import annotations

import argparse
from typing import Callable, Sequence

from cpnas.parallel import check_environment


def seed_value(text: str) -> int:
    """argparse type: one seed in 0…2⁶³−1 (what ``torch.manual_seed`` accepts)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"seeds must be in 0…2⁶³−1, got {value}")
    return value


def seed_list(text: str) -> tuple[int, ...]:
    """argparse type: ``"0,1,2"`` → ``(0, 1, 2)``; seeds must be in 0…2⁶³−1."""
    try:
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not seeds:
        raise argparse.ArgumentTypeError("no seed given")
    bad = [s for s in seeds if not 0 <= s < 2**63]
    if bad:
        raise argparse.ArgumentTypeError(f"seeds must be in 0…2⁶³−1, got {bad}")
    return seeds


def positive_int(text: str) -> int:
    """argparse type: an integer ≥ 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def name_list(choices: Sequence[str], what: str):
    """argparse type: comma-separated names, each one of ``choices`` (in the order given, no repeats)."""
    def parse(text: str) -> tuple[str, ...]:
        names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
        unknown = [n for n in names if n not in choices]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"unknown {what} {unknown or text!r}; choose from {', '.join(choices)}")
        return names
    return parse


def study_parser(prog: str, description: str, scales: Sequence[str]) -> argparse.ArgumentParser:
    """The options every study driver has: ``--scale``, ``--jobs``, ``--data``."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--scale", default="cpu", choices=tuple(scales), help="scale of the runs (default: cpu)")
    p.add_argument("--jobs", type=positive_int, default=1,
                   help="parallel worker processes, one thread each (default: 1)")
    p.add_argument("--data", default=None, metavar="PATH", help="CIFAR-10 folder (default: $CPNAS_CIFAR10)")
    return p


def run_study(prog: str, work: Callable[[], object]) -> int:
    """Run ``work`` with INFO logging; a :class:`~cpnas.errors.CpnasError` is one line on stderr and exit 2."""
    import logging

    from cpnas.errors import exit_status

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")

    def checked() -> None:
        check_environment()
        result = work()
        if result is not None:
            print(result)

    return exit_status(prog, checked)


def add_executor_args(p: argparse.ArgumentParser) -> None:
    """``--executor local|slurm|submitit-local`` and the Slurm options of :class:`cpnas.parallel.SlurmOptions`."""
    from cpnas.parallel import EXECUTORS, SlurmOptions

    d = SlurmOptions()
    p.add_argument("--executor", default="local", choices=EXECUTORS,
                   help="where the runs go: local worker processes (default), Slurm through submitit, or "
                        "submitit's local executor (a test of the cluster path)")
    p.add_argument("--slurm-partition", default=None, help="Slurm partition (default: the cluster's)")
    p.add_argument("--slurm-time", type=positive_int, default=d.time_min, metavar="MIN",
                   help=f"time limit per run in minutes (default: {d.time_min})")
    p.add_argument("--slurm-gpus", type=int, default=d.gpus_per_node, help=f"GPUs per run (default: {d.gpus_per_node})")
    p.add_argument("--slurm-cpus", type=positive_int, default=d.cpus_per_task,
                   help=f"CPUs per run (default: {d.cpus_per_task})")
    p.add_argument("--slurm-mem-gb", type=positive_int, default=d.mem_gb, help=f"memory per run (default: {d.mem_gb})")


def slurm_options(args: argparse.Namespace, scale: str):
    """The :class:`cpnas.parallel.SlurmOptions` of parsed :func:`add_executor_args`; logs under results/<scale>."""
    from cpnas.parallel import SlurmOptions, check_executor
    from cpnas.runs import submitit_dir

    check_executor(args.executor)  # no Slurm here: one line before anything runs
    return SlurmOptions(folder=str(submitit_dir(scale)), partition=args.slurm_partition,
                        time_min=args.slurm_time, gpus_per_node=args.slurm_gpus, cpus_per_task=args.slurm_cpus,
                        mem_gb=args.slurm_mem_gb)
