"""``cpnas config``: print the resolved configuration of a scale, with each value's source."""

from __future__ import annotations

import argparse

from cpnas.cli.common import add_scale_args, resolve_config
from cpnas.config import iter_fields, parse_override
from cpnas.data import dataset_names
from cpnas.presets import PRESET_RECIPES, RECIPE_SOURCES, RECIPES
from cpnas.strategy_base import get_strategy, strategy_names


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="print the configuration of a scale and where each value comes from",
                       description="Print every hyperparameter of a scale (paper, cpu, smoke), with the "
                                   "paper section it comes from; size fields are marked [size], fields set by the "
                                   "scale's named training recipe [recipe].")
    add_scale_args(p)
    p.add_argument("--dataset", default=None, choices=dataset_names(),
                   help="also apply this dataset's search settings (§3.1: ImageNet's search lr and β_P), as "
                        "'cpnas search --dataset' does; --set still comes last")
    p.add_argument("--strategy", default=None, choices=strategy_names(),
                   help="show only this strategy's own settings beside the shared ones (default: every "
                        "strategy's, each marked with the strategy that reads it)")
    p.add_argument("--json", action="store_true", help="print the configuration as JSON")
    p.set_defaults(func=run)


def unused_fields(cfg) -> dict[str, str]:
    """Fields the configuration lists but no run reads under its other settings, with what is read instead."""
    return {key: why for name in strategy_names() for key, why in get_strategy(name).unused_settings(cfg).items()}


def run(args: argparse.Namespace) -> int:
    from cpnas.data.registry import dataset_search_values

    cfg = resolve_config(args, dataset=args.dataset)
    if args.json:
        print(cfg.to_json())
        return 0
    recipe = PRESET_RECIPES.get(cfg.scale, "paper")
    user = {parse_override(o)[0] for o in args.overrides}
    by_dataset = set(dataset_search_values(cfg, args.dataset)) - user if args.dataset else set()
    unused = unused_fields(cfg)
    print(f"# scale: {cfg.scale}; training recipe: {recipe} ({RECIPE_SOURCES[recipe]})"
          + (f"; dataset: {args.dataset}" if args.dataset else ""))
    print("# resolution: the scale's preset, then the dataset's search settings [dataset], then --set [--set]")
    for key, value, meta in iter_fields(cfg):
        if meta.get("resolved"):
            continue
        owner = meta.get("strategy")
        if owner is not None and args.strategy not in (None, owner):
            continue  # another strategy's own setting
        tag = " [size]" if meta.get("size") else ""
        src = meta.get("source", "") if owner is None else f"{owner} only: {meta.get('source', '')}"
        if key in RECIPES[recipe]:
            tag, src = " [recipe]", f"recipe {recipe}: {RECIPE_SOURCES[recipe]}"
        if key in by_dataset:
            tag, src = " [dataset]", f"{args.dataset} search (§3.1)"
        if key in user:
            tag, src = " [--set]", "set on the command line"
        if key in unused:
            src = f"({unused[key]}) {src}"
        print(f"{key:32s} = {value!r:<14}{tag:10s} {src}")
    return 0
