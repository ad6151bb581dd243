"""``cpnas train``: train a found architecture from scratch (§3.1) and write ``metrics.json``."""

from __future__ import annotations

import argparse
import json

from cpnas import distributed
from cpnas.io import run_lock
from cpnas.binary import PRECISIONS
from cpnas.cli.common import (add_accel_args, add_data_args, add_distributed_args, add_run_args, add_scale_args,
                              apply_accel, apply_loader, check_writable, resolve_config, say)
from cpnas.efficiency import SIZES
from cpnas.losses import LOSSES
from cpnas.presets import DEFAULT_SCALE, PRESET_RECIPES, RECIPES


def _recipe_words(name: str) -> str:
    """The CIFAR fields a named recipe sets, in words for ``--help`` (from :data:`cpnas.presets.RECIPES`)."""
    r = {k.split(".", 1)[1]: v for k, v in RECIPES[name].items() if k.startswith("cifar.")}
    words = [f"{r.get('optimizer', 'sgd')} (lr {r['lr']:g}" if "lr" in r else r.get("optimizer", "sgd")]
    if "lr_schedule" in r:
        words[0] += f", {r['lr_schedule'].replace('_', ' per ')})"
    elif "lr" in r:
        words[0] += ")"
    if r.get("weight_decay") == 0 and r.get("binary_weight_decay") == 0:
        words.append("no weight decay")
    if r.get("cutout") == 0:
        words.append("no cutout")
    if RECIPES[name].get("loss.kernel_weight") == 0:
        words.append("the CP loss's kernel term off (loss.kernel_weight = 0)")
    return ", ".join(words)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train the evaluation network of a genotype (Tables 1 and 2)",
        description=f"Build the CIFAR-10 or ImageNet evaluation network of a genotype at the sizes of the scale "
                    f"(paper: 10 cells, C = 56/72/112 on CIFAR-10, 102 on ImageNet), train it with the scale's "
                    f"training recipe and the CP loss of Eq. 3-4 or plain cross-entropy, and write metrics.json "
                    f"(test error, top-1/top-5, params, memory, FLOPs, wall-clock), history.json and a checkpoint "
                    f"after every epoch to --out. The default scale, {DEFAULT_SCALE}, trains with the recipe "
                    f"{PRESET_RECIPES[DEFAULT_SCALE]!r}: {_recipe_words(PRESET_RECIPES[DEFAULT_SCALE])}. "
                    f"--scale paper trains with §3.1's recipe: SGD with momentum, cosine learning rate per "
                    f"epoch, weight decay, cutout, auxiliary tower, label smoothing on ImageNet. "
                    f"'cpnas config' shows every value.",
        epilog="Example: cpnas train --genotype results/cpu/search/cpnas/seed0/genotype.json --size small "
               "--scale smoke --dataset synthetic --out /tmp/t. Data-parallel: torchrun --standalone "
               "--nproc-per-node N -m cpnas train … (README 'Scaling out').")
    p.add_argument("--genotype", required=True, metavar="PATH", help="genotype JSON (cpnas search writes one)")
    p.add_argument("--size", default="small", choices=SIZES,
                   help="model size: small/medium/large = C 56/72/112 on CIFAR-10 at the paper scale "
                        "(default: small; ImageNet has one size, C = 102)")
    add_scale_args(p)
    add_data_args(p)
    add_run_args(p)
    add_distributed_args(p)
    add_accel_args(p)
    p.add_argument("--loss", default="cp", choices=LOSSES,
                   help="cp: cross-entropy + the kernel-level CP loss of Eq. 3 (default); ce: cross-entropy only")
    p.add_argument("--precision", default="binary", choices=tuple(PRECISIONS),
                   help="cell convolutions: binary (1-bit weights and activations, default), real, or the "
                        "Table 2 variants binary* (first layer of each separable conv with real inputs) and "
                        "binary** (also the input-node preprocessing)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cpnas.evaluation import METRICS, train_genotype
    from cpnas.genotype import load_genotype

    cfg = resolve_config(args)
    apply_loader(args)
    apply_accel(args)
    genotype = load_genotype(args.genotype)  # a corrupt file is a one-line CpnasError
    check_writable(args.out)
    finished = (args.out / METRICS).exists()
    with distributed.session(args.device, sync_bn=args.sync_bn), run_lock(args.out, wait=0):
        metrics = train_genotype(genotype, cfg, out=args.out, size=args.size, dataset=args.dataset,
                                 data_root=args.data, seed=args.seed, loss=args.loss, precision=args.precision,
                                 resume=args.resume, device=args.device, genotype_path=args.genotype)
        if finished:
            say(f"{args.out} is finished; nothing to resume (metrics kept)")
        summary = {k: metrics.get(k) for k in ("test_error", "top1", "top5", "params_m", "memory_mbit",
                                               "flops_m", "epochs", "wall_clock_s", "dataset_description")}
        say(f"metrics: {args.out / METRICS}", json.dumps(summary))
    return 0
