"""``cpnas config``: print the resolved configuration of a scale, with each value's source."""

from __future__ import annotations

import argparse

from cpnas.cli.common import add_scale_args, resolve_config
from cpnas.config import iter_fields


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="print the configuration of a scale and where each value comes from",
                       description="Print every hyperparameter of a scale (paper, cpu, smoke), with the "
                                   "paper section it comes from; size fields are marked [size].")
    add_scale_args(p)
    p.add_argument("--json", action="store_true", help="print the configuration as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = resolve_config(args)
    if args.json:
        print(cfg.to_json())
        return 0
    print(f"# scale: {cfg.scale}")
    for key, value, meta in iter_fields(cfg):
        tag = " [size]" if meta.get("size") else ""
        src = meta.get("source", "")
        print(f"{key:32s} = {value!r:<14}{tag:8s} {src}")
    return 0
