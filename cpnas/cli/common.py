"""Arguments and checks shared by the subcommands."""

from __future__ import annotations

import argparse
from pathlib import Path

from cpnas.config import DEFAULT_SCALE, SCALES, Config, get_config, parse_override


def add_scale_args(p: argparse.ArgumentParser) -> None:
    """``--scale`` and repeatable ``--set key=value`` overrides."""
    p.add_argument("--scale", default=DEFAULT_SCALE, choices=SCALES,
                   help=f"preset of sizes (default: {DEFAULT_SCALE}); see README 'Scales'")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config field, e.g. --set search.T=2 (repeatable; "
                        "'cpnas config' lists the keys)")


def resolve_config(args: argparse.Namespace, extra: dict | None = None) -> Config:
    overrides = dict(parse_override(o) for o in args.overrides)
    overrides.update(extra or {})
    return get_config(args.scale, overrides)


def add_data_args(p: argparse.ArgumentParser, choices: tuple[str, ...], default: str) -> None:
    p.add_argument("--dataset", default=default, choices=choices, help=f"dataset (default: {default})")
    p.add_argument("--data", type=Path, default=None, metavar="PATH",
                   help="ImageFolder root of the dataset (else $CPNAS_CIFAR10 / $CPNAS_IMAGENET; "
                        "CIFAR-10 is downloaded by torchvision when neither is set)")


def add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory of the run")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    p.add_argument("--device", default="auto", help="torch device: auto (cuda if available), cpu, cuda, cuda:1")
