"""``cpnas config``: print the resolved configuration of a scale, with each value's source."""

from __future__ import annotations

import argparse

from cpnas.cli.common import add_scale_args, resolve_config
from cpnas.config import PRESET_RECIPES, RECIPE_SOURCES, RECIPES, iter_fields


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="print the configuration of a scale and where each value comes from",
                       description="Print every hyperparameter of a scale (paper, cpu, smoke), with the "
                                   "paper section it comes from; size fields are marked [size], fields set by the "
                                   "scale's named training recipe [recipe].")
    add_scale_args(p)
    p.add_argument("--json", action="store_true", help="print the configuration as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = resolve_config(args)
    if args.json:
        print(cfg.to_json())
        return 0
    recipe = PRESET_RECIPES.get(cfg.scale, "paper")
    print(f"# scale: {cfg.scale}; training recipe: {recipe} ({RECIPE_SOURCES[recipe]})")
    for key, value, meta in iter_fields(cfg):
        tag = " [size]" if meta.get("size") else ""
        src = meta.get("source", "")
        if key in RECIPES[recipe]:
            tag, src = " [recipe]", f"recipe {recipe}: {RECIPE_SOURCES[recipe]}"
        print(f"{key:32s} = {value!r:<14}{tag:8s} {src}")
    return 0
