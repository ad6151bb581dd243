"""``cpnas search``: run one architecture search (Alg. 1 and the baselines of Fig. 6)."""

from __future__ import annotations

import argparse
import json
import math

from cpnas import distributed
from cpnas.io import run_lock
from cpnas.cli.common import (add_accel_args, add_data_args, add_distributed_args, add_run_args, add_scale_args,
                              apply_accel, apply_loader, check_writable, resolve_config, say)
from cpnas.errors import CpnasError
from cpnas.strategy_base import beta_p_of, get_strategy, strategy_names


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "search", help="search a 1-bit architecture (cpnas, bnas, random, pcdarts)",
        description="Search a cell architecture on the search split of the training set (50% to train, "
                    "5% to score at the paper scale, §3.1) and write genotype.json, history.json, "
                    "cost.json and checkpoints to --out.",
        epilog="Example: cpnas search --strategy cpnas --scale smoke --dataset synthetic --out /tmp/s. "
               "Data-parallel: torchrun --standalone --nproc-per-node N -m cpnas search … (README 'Scaling out').")
    p.add_argument("--strategy", default="cpnas", choices=strategy_names(),
                   help="search strategy (default: cpnas); bnas = cpnas with β_P = 0")
    add_scale_args(p)
    add_data_args(p)
    add_run_args(p)
    add_distributed_args(p)
    add_accel_args(p)
    p.add_argument("--beta-p", type=float, default=None, metavar="X",
                   help="β_P of Eq. 1 (default: the config's, 2 on CIFAR-10, 0.33 on ImageNet)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the resolved configuration and epoch schedule; train nothing")
    # --out is not needed for a dry run
    for action in p._actions:
        if action.dest == "out":
            action.required = False
    p.set_defaults(func=run)


def check_search_memory(strategy: str, cfg, device: str) -> None:
    """Refuse a supernet too large for memory (e.g. ``--set search.init_channels=1000000``) before allocating it."""
    from cpnas.evaluation import check_fits_in_memory

    s = cfg.search
    check_fits_in_memory(f"the search network (search.init_channels = {s.init_channels}, "
                         f"search.layers = {s.layers})", lambda: get_strategy(strategy).supernets(cfg, 10),
                         copies=3, device=device)


def run(args: argparse.Namespace) -> int:
    cfg = resolve_config(args, dataset=args.dataset)  # §3.1's ImageNet search lr and β_P, then --set
    if args.beta_p is not None and not math.isfinite(args.beta_p):
        raise CpnasError(f"--beta-p must be a finite number, got {args.beta_p}")
    beta_p_of(args.strategy, args.beta_p, cfg.search.beta_p)  # a --beta-p the strategy fixes otherwise: refused
    if args.dry_run:
        from cpnas.search import dry_run
        plan = dry_run(args.strategy, cfg, args.beta_p)
        print(f"strategy {plan['strategy']}  scale {plan['scale']}  dataset {args.dataset}  β_P {plan['beta_p']}  "
              f"lr {cfg.search.lr}")
        print(f"search epochs: {plan['epochs']}")
        for row in plan["schedule"]:
            print("  " + "  ".join(f"{k}={v}" for k, v in row.items()))
        print("configuration:")
        print(json.dumps(plan["config"], indent=2))
        return 0
    if args.out is None:
        raise CpnasError("--out DIR is required (except with --dry-run)")
    check_writable(args.out)
    check_search_memory(args.strategy, cfg, args.device)
    from cpnas.search import run_search
    apply_loader(args)
    apply_accel(args)
    with distributed.session(args.device, sync_bn=args.sync_bn), run_lock(args.out, wait=0):
        result = run_search(args.strategy, cfg, dataset=args.dataset, data_root=args.data, seed=args.seed,
                            out=args.out, resume=args.resume, device=args.device, beta_p=args.beta_p)
        say(f"genotype: {result.out / 'genotype.json'}", json.dumps(result.genotype.to_dict()),
            f"search cost: {result.cost['wall_clock_s']:.1f} s on {result.cost['device_name']}")
    return 0
