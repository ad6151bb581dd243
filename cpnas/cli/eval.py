"""``cpnas eval``: rebuild a trained network from its run folder and measure it again."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval", help="test top-1/top-5, params, Mbit and FLOPs of a trained run (from its checkpoint)",
        description="Rebuild the network of a training run from its config.json and checkpoint.pt, evaluate it "
                    "on the run's test split, and report top-1/top-5 with params, memory (Mbit) and FLOPs.",
        epilog="Example: cpnas eval --checkpoint results/cpu/train/darts_v2/seed0 --json")
    p.add_argument("--checkpoint", type=Path, required=True, metavar="PATH",
                   help="a training run folder (its checkpoint.pt is evaluated), or a checkpoint file in one "
                        "(that file is evaluated, with the folder's config.json)")
    p.add_argument("--data", type=Path, default=None, metavar="PATH",
                   help="dataset folder (else $CPNAS_CIFAR10 / $CPNAS_IMAGENET, as for training)")
    p.add_argument("--device", default="auto", help="torch device: auto (cuda if available), cpu, cuda")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cpnas.evaluation import evaluate_run

    res = evaluate_run(args.checkpoint, data_root=args.data, device=args.device)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    stored = "" if res["stored_top1"] is None else f" (stored in metrics.json: {res['stored_top1']:.2f} %)"
    print(f"{res['checkpoint']}: {res['dataset']}, size {res['size']}, {res['precision']}")
    print(f"  test top-1 {res['top1']:.2f} %, top-5 {res['top5']:.2f} % on {res['test_images']:,} images{stored}")
    print(f"  params {res['params_m']:.3f} M, memory {res['memory_mbit']:.3f} Mbit, FLOPs {res['flops_m']:.2f} M")
    return 0
