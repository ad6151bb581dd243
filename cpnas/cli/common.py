"""Arguments and checks shared by the subcommands."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from cpnas.arguments import seed_value
from cpnas.config import Config, get_config, parse_override
from cpnas.parallel import check_environment  # noqa: F401  (every command calls it at start-up)
from cpnas.presets import DEFAULT_SCALE, SCALES


def add_scale_args(p: argparse.ArgumentParser) -> None:
    """``--scale`` and repeatable ``--set key=value`` overrides."""
    p.add_argument("--scale", default=DEFAULT_SCALE, choices=SCALES,
                   help=f"preset of sizes (default: {DEFAULT_SCALE}); see README 'Scales'")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config field, e.g. --set search.T=2 (repeatable; "
                        "'cpnas config' lists the keys)")


def resolve_config(args: argparse.Namespace, dataset: str | None = None) -> Config:
    """The scale's preset, then ``dataset``'s search settings (§3.1), then the user's ``--set`` (last)."""
    overrides = dict(parse_override(o) for o in args.overrides)
    from cpnas.data.registry import config_for

    return config_for(args.scale, overrides, dataset)


def add_data_args(p: argparse.ArgumentParser, choices: Sequence[str] | None = None,
                  default: str | None = None) -> None:
    """``--dataset`` (by default any name of the dataset registry) and ``--data PATH``."""
    from cpnas.data import DEFAULT_DATASET, ENV_VARS, dataset_names

    default = default or DEFAULT_DATASET
    p.add_argument("--dataset", default=default, choices=tuple(choices or dataset_names()),
                   help=f"dataset (default: {default})")
    p.add_argument("--data", type=Path, default=None, metavar="PATH",
                   help=f"ImageFolder root of the dataset (else {' / '.join('$' + v for v in ENV_VARS.values())}; "
                        "CIFAR-10 is downloaded by torchvision when neither is set)")


def add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=seed_value, default=0, help="random seed, 0…2⁶³−1 (default: 0)")
    p.add_argument("--out", type=out_dir, required=True, metavar="DIR", help="output directory of the run")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    p.add_argument("--device", default="auto", help="torch device: auto (cuda if available), cpu, cuda, cuda:1")


def add_distributed_args(p: argparse.ArgumentParser) -> None:
    """``--sync-bn``: the option of a data-parallel run under torchrun (:mod:`cpnas.distributed`)."""
    p.add_argument("--loader", default="auto", choices=("auto", "memory", "stream"),
                   help="auto: as the dataset registry says for the scale (ImageNet streams at paper); memory: "
                        "decode once into memory; stream: ImageFolder read from disk by DataLoader workers")
    p.add_argument("--sync-bn", action="store_true",
                   help="under torchrun: BatchNorm statistics over the global batch (SyncBatchNorm) instead of "
                        "each process's part of it (default: off; no effect in one process)")


def add_accel_args(p: argparse.ArgumentParser) -> None:
    """``--amp`` (CUDA only) and ``--compile`` (:mod:`cpnas.accel`)."""
    p.add_argument("--amp", default="off", choices=("off", "bf16"),
                   help="CUDA only: forward passes and losses under bf16 autocast (default: off; off on CPU)")
    p.add_argument("--compile", nargs="?", const="on", default="auto", choices=("auto", "on", "off"),
                   help="torch.compile the training network (a search: each candidate op): auto (default) "
                        "compiles where `make bench` measured it faster on this machine, else eager; "
                        "--compile alone means on")


def apply_accel(args: argparse.Namespace) -> None:
    """Set :mod:`cpnas.accel` from ``--amp`` / ``--compile`` for the run's device (bf16: CUDA only)."""
    from cpnas import accel
    from cpnas.train import resolve_device

    accel.configure(getattr(args, "amp", "off"), getattr(args, "compile", "auto"), resolve_device(args.device))


def apply_loader(args: argparse.Namespace) -> None:
    """``--loader``: passed to the data layer (and to worker processes) as ``$CPNAS_LOADER``."""
    import os

    from cpnas.data.stream import LOADER_ENV

    if getattr(args, "loader", "auto") != "auto":
        os.environ[LOADER_ENV] = args.loader


def say(*lines: str) -> None:
    """Print the result lines of a command: once, by rank 0 of a data-parallel run."""
    from cpnas import distributed

    if distributed.is_main():
        for line in lines:
            print(line)


# --- the study drivers (python -m cpnas.ablation / .recipe / .proxy) ------------------------------------------


def out_dir(text: str) -> Path:
    """argparse type: a run folder, existing or not, but not a file nor an empty name."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty name is not a folder for the run (give a path, e.g. results/run1)")
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a file, not a folder for the run")
    return path


def out_file(text: str) -> Path:
    """argparse type: a file to write, existing or not, but not a folder nor an empty name."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty name is not a file to write")
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a folder, not a file to write")
    return path


# --- checks every command makes before it loads data or writes -----------------------------------------------


def check_writable(folder: Path | None, what: str = "--out") -> None:
    """Refuse a ``folder`` (existing or to be created) that cannot be written, before any data loads.

    The probe is a real write (a temporary file named by :data:`cpnas.io.TEMP_MARK`, removed at
    once) in the folder or its nearest existing parent: permission bits alone say nothing of a
    read-only file system, nor of root.
    """
    import os
    import tempfile

    from cpnas import distributed
    from cpnas.errors import CpnasError
    from cpnas.io import TEMP_MARK, unwritable_error

    if folder is None or not distributed.is_main():
        return
    probe = Path(folder).absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise CpnasError(f"{what} {folder}: {probe} is a file, not a folder")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".probe{TEMP_MARK}", suffix=".tmp", dir=probe)
    except OSError as exc:
        raise unwritable_error(probe, exc) from None
    os.close(fd)
    os.unlink(tmp)
