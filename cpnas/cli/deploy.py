"""``cpnas deploy``: pack a 1-bit network (XNOR-popcount), check it against the simulated one, time it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cpnas.arguments import positive_int
from cpnas.cli.common import add_scale_args, check_writable, out_file, resolve_config
from cpnas.efficiency import SIZES
from cpnas.errors import CpnasError
from cpnas.runs.files import CHECKPOINT


def _count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return n


def _thread_list(text: str) -> tuple[int, ...]:
    return tuple(positive_int(t) for t in text.split(",") if t.strip()) or (positive_int(text),)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "deploy", help="run a genotype's 1-bit network bit-packed (XNOR-popcount) and measure it",
        description="Build the evaluation network of a genotype (trained weights from a 'cpnas train' run folder, "
                    "or random weights with BN statistics from a few images), pack it for inference (binary "
                    "weights 64 per word, BN folded, 1x1 convs as XNOR-popcount GEMMs in a C++ extension built "
                    "at first use), check that its logits equal the simulated 1-bit PyTorch network's (same "
                    "integers inside, floats within 1e-5) and that it predicts the same classes on test images, "
                    "and time the 32-bit, simulated and packed networks "
                    "and the packed 1x1 kernel alone. Needs g++ and ninja once.",
        epilog="Examples: cpnas deploy --genotype tests/data/darts_v2.json --json; "
               "cpnas deploy --genotype G.json --checkpoint RUN --save model.cpnas; "
               "cpnas deploy --load model.cpnas --images FOLDER (format: docs/inference.md)")
    p.add_argument("--genotype", default=None, metavar="PATH",
                   help="genotype JSON (cpnas search writes one); needed unless --load")
    p.add_argument("--checkpoint", type=Path, default=None, metavar="RUN_DIR",
                   help="a 'cpnas train' run folder holding checkpoint.pt (default: random weights)")
    p.add_argument("--size", default="small", choices=SIZES, help="model size (default: small)")
    p.add_argument("--dataset", default="cifar10", choices=("cifar10", "imagenet"),
                   help="network family without --checkpoint (default: cifar10)")
    p.add_argument("--data", type=Path, default=None, metavar="PATH",
                   help="image folder for the real-image check (else $CPNAS_CIFAR10 / $CPNAS_IMAGENET; "
                        "synthetic images when none)")
    add_scale_args(p)
    p.add_argument("--threads", type=_thread_list, default=None, metavar="N[,N]",
                   help="thread counts to time (default: torch's current count)")
    p.add_argument("--batch", type=_thread_list, default=(1,), metavar="B[,B]",
                   help="batch sizes to time (default: 1)")
    p.add_argument("--save", "--out", dest="save", type=out_file, default=None, metavar="FILE",
                   help="also write the packed model file here (one file: packed weights, folded BN, genotype)")
    p.add_argument("--load", type=Path, default=None, metavar="FILE",
                   help="a packed model file (from --save) to classify --images with, instead of measuring")
    p.add_argument("--images", type=Path, default=None, metavar="FOLDER",
                   help="with --load: a folder of images to classify (one line per image; JSON with --json)")
    p.add_argument("--no-compile", dest="compile_fp32", action="store_false",
                   help="time the 32-bit baseline in eager PyTorch only (default: also torch.compile, and the "
                        "faster is the baseline)")
    p.add_argument("--isa", type=lambda t: tuple(x for x in t.split(",") if x), default=(), metavar="ISA[,ISA]",
                   help="also time the packed network on the extension built for these instruction sets "
                        "(avx2, portable; e.g. the AVX2 path on an AVX-512 CPU)")
    p.add_argument("--agreement-images", type=_count, default=None, metavar="N",
                   help="test images (the first N/10 of each class) on which the packed network's classes and "
                        "logits are compared with the simulated network's (default: 1000; 0 skips)")
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    p.set_defaults(func=run)


def _classify(args: argparse.Namespace) -> int:
    from cpnas.deploy.classify import classify

    if args.images is None:
        raise CpnasError("--load needs --images FOLDER (the images to classify)")
    res = classify(args.load, args.images)
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    path = res["path"]
    print(f"{res['images']} images, packed {res['network']['dataset']} network C={res['network']['channels']} "
          f"({path['xnor']} XNOR path, {path['depthwise']} depthwise path)")
    for row in res["predictions"]:
        print(f"{row['path']}\t{row['class']}\t{row['probability']:.3f}")
    return 0


def run(args: argparse.Namespace) -> int:
    from cpnas.deploy.report import deploy_report
    from cpnas.genotype import load_genotype

    if args.load is not None:
        if args.genotype or args.checkpoint or args.save:
            raise CpnasError("--load classifies with a packed file: drop --genotype, --checkpoint and --save")
        return _classify(args)
    if args.images is not None:
        raise CpnasError("--images needs --load FILE (a packed model file from 'cpnas deploy --save')")
    if args.genotype is None:
        raise CpnasError("give --genotype PATH (to pack and measure a network) or --load FILE --images FOLDER")
    cfg = resolve_config(args)
    from cpnas.deploy.kernels import chosen_isa

    for isa in args.isa:
        chosen_isa(isa)  # an unknown instruction set is one line now, not after the measurement
    genotype = load_genotype(args.genotype)  # a bad path or file is a one-line CpnasError
    # checked here, before the C++ extension is built (a minute at first use)
    if args.checkpoint is not None and not (args.checkpoint / CHECKPOINT).is_file():
        what = "no such folder" if not args.checkpoint.exists() else "no checkpoint.pt in it"
        raise CpnasError(f"--checkpoint {args.checkpoint}: {what}; give a 'cpnas train' run folder (its --out)")
    if args.save is not None:
        check_writable(args.save.parent, "--save")
    report = deploy_report(genotype, cfg, dataset=args.dataset, size=args.size, checkpoint=args.checkpoint,
                           data_root=args.data, batches=args.batch, thread_counts=args.threads,
                           packed_file=args.save, compile_fp32=args.compile_fp32, isas=args.isa,
                           **({} if args.agreement_images is None else {"agreement_images": args.agreement_images}))
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    if report.get("path") == "simulated":
        print(f"packed kernels unavailable ({report['unavailable']}); fp32 {report['latency_ms']['fp32']:.2f} ms, "
              f"simulated 1-bit {report['latency_ms']['simulated']:.2f} ms")
        return 0
    lat = report["latency_ms"]
    net = report["network"]
    print(f"packed {net['dataset']} network, C={net['channels']}, {net['layers']} cells ({net['weights']})")
    print(f"exact: {report['exact']} (max |logit difference| {report['max_abs_diff']:.2e}, "
          f"{report['exactness']['images']['integers_compared']:,} XNOR integers equal: "
          f"{report['exactness']['images']['integers_equal']})")
    agreed = report["agreement"]
    if agreed:
        print(f"agreement with the simulated network on {agreed['inputs']}: classes equal on {agreed['classes_equal']} "
              f"of {agreed['images']}, max |logit difference| {agreed['max_abs_diff']:.2e}"
              + (f", top-1 simulated {agreed['top1_simulated']:.1f} %, packed {agreed['top1_packed']:.1f} %"
                 if "top1_packed" in agreed else ""))
    print(f"latency, batch {report['latency_batch']}, {report['latency_threads']} thread(s): fp32 {lat['fp32']:.2f} ms "
          f"({report['fp32_baseline']}), simulated 1-bit {lat['simulated']:.2f} ms, packed {lat['packed']:.2f} ms "
          f"({report['speedup_end_to_end']:.2f}x end to end; FLOPs estimate {report['speedup_flops_estimate']:.1f}x; "
          f"{report['machine']['simd_path']} XNOR path, {report['machine']['depthwise_path']} depthwise path)")
    print("packed 1x1 vs fp32 1x1: " + ", ".join(f"C={c} {s:.1f}x" for c, s in report["kernel_1x1_speedup"].items()))
    f = report["file"]
    print(f"file {f['file_mbit']:.3f} Mbit (payload {f['payload_mbit_excl_bn_stats']:.3f} Mbit) vs Table 3 "
          f"accounting {f['table3_mbit']:.3f} Mbit ({f['table3_mbit_excl_bn']:.3f} without BN)")
    return 0
