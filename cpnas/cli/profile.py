"""``cpnas profile``: parameters, memory bits and FLOPs of a network (§3.4, Table 3).

Analytic: the network is built on the ``meta`` device and one shape-only forward
pass is counted (see :mod:`cpnas.efficiency`), so the paper's sizes are the
default and any machine profiles them in seconds.
"""

from __future__ import annotations

import argparse
import json

from cpnas.binary import PRECISIONS
from cpnas.data import dataset_names, get_dataset
from cpnas.efficiency import BASELINE_DATASET, SIZES, profile_arch, profile_genotype
from cpnas.errors import CpnasError
from cpnas.wrn import WRN_ARCHS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "profile", help="count params, memory bits and FLOPs of WRN-22 or a genotype's network (Table 3)",
        description="Count real and 1-bit parameters, memory (32 bits per real, 1 per binary parameter), "
                    "real and binary MACs, and FLOPs = real MACs + binary MACs / 64 (Table 3's convention), "
                    "with memory saving and speedup relative to full-precision WRN-22. Sizes default to "
                    "the paper's (C = 56/72/112 and 10 cells on CIFAR-10, C = 102 on ImageNet).")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--arch", choices=tuple(WRN_ARCHS), help="a built-in baseline (WRN-22, 1-bit WRN-22)")
    what.add_argument("--genotype", metavar="PATH", help="genotype JSON of a found architecture")
    p.add_argument("--size", choices=SIZES, default=None,
                   help="CIFAR-10 model size: small/medium/large = C 56/72/112 (default: small)")
    p.add_argument("--channels", type=int, default=None, metavar="C", help="initial channels (overrides --size)")
    p.add_argument("--layers", type=int, default=None, metavar="L", help="number of cells (default: 10)")
    p.add_argument("--precision", choices=tuple(PRECISIONS), default=None,
                   help="cell convolutions: binary (default), real, or the Table 2 variants binary*, binary**")
    p.add_argument("--dataset", choices=dataset_names(paper=True), default=None,
                   help="cifar10 (32×32, default) or imagenet (224×224, 1000 classes)")
    p.add_argument("--exclude-bn", action="store_true",
                   help="leave BN parameters out of params and memory (the paper's memory figures read so)")
    p.add_argument("--depth", type=int, default=2, metavar="D",
                   help="sum rows by the first D parts of the module name (0 = every layer; default: 2)")
    p.add_argument("--json", action="store_true", help="print the totals as one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    include_norm = not args.exclude_bn
    if args.depth < 0:
        raise CpnasError(f"--depth must be >= 0, got {args.depth}")
    if args.arch:
        given = [f"--{k}" for k in ("size", "channels", "layers", "precision") if getattr(args, k) is not None]
        if given:
            verb = "applies" if len(given) == 1 else "apply"
            raise CpnasError(f"{', '.join(given)} only {verb} to --genotype; --arch {args.arch} is a fixed network "
                             f"(choose --arch wrn22-binary for the 1-bit form)")
        if args.dataset not in (None, BASELINE_DATASET):
            label = get_dataset(BASELINE_DATASET).label
            raise CpnasError(f"--arch {args.arch} is a {label} network (32×32 inputs); drop --dataset")
        prof = profile_arch(args.arch, include_norm)
    else:
        from cpnas.genotype import load_genotype

        genotype = load_genotype(args.genotype)
        prof = profile_genotype(genotype, dataset=args.dataset or BASELINE_DATASET, size=args.size or "small",
                                channels=args.channels, layers=args.layers, precision=args.precision or "binary",
                                include_norm=include_norm, name=str(args.genotype))
    if args.json:
        print(json.dumps(prof.summary()))
        return 0
    table = prof.grouped(args.depth)
    print(f"# {prof.name}: input {tuple(prof.input_size)}, BN {'counted' if include_norm else 'excluded'}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    s = prof.summary()
    print(f"\nparams {s['params']:,} ({s['binary_params']:,} 1-bit, {s['real_params']:,} real); "
          f"memory {s['memory_mbit']:.2f} Mbit; FLOPs {s['flops_m']:.2f} M "
          f"(real MACs {s['real_macs']:,}, binary MACs {s['binary_macs']:,} / 64)")
    print(f"vs full-precision WRN-22 on CIFAR-10 (Table 3's reference): "
          f"memory saving {s['memory_saving']:.2f}×, speedup {s['speedup']:.2f}×")
    return 0
