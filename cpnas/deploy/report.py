"""``cpnas deploy``'s report and ``make bench`` (e): a genotype's network packed, checked and timed side by side.

* :func:`deploy_report` — exactness, the latency table (32-bit eager and ``torch.compile``,
  simulated 1-bit, packed with each cell one extension call, packed op by op, and the
  packed network on narrower instruction-set builds), file size, time per kernel class.
* :func:`bench` / :func:`markdown` — ``make bench`` (e) and notebook 06.
* :func:`recorded_or_bench` — notebook 06: the timings ``make bench`` recorded for the found cell
  (``results/bench/bench.json``), measured afresh only where it has none.

The measurements themselves are :mod:`cpnas.deploy.measure`'s.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from cpnas.config import Config
from cpnas.deploy.measure import (KERNEL_CHANNELS, KERNEL_PIXELS, PAPER_SPEEDUP, TIME_CLASSES, agreement, exactness,
                                  file_size,
                                  kernel_1x1, macs_split, network_latency, threads, time_shares)
from cpnas.deploy.pair import CALIBRATION_IMAGES, build_pair, calibrate_bn, labelled_images, sample_images
from cpnas.errors import CpnasError
from cpnas.genotype import Genotype

log = logging.getLogger(__name__)

AGREEMENT_IMAGES = 1000
"""Test images on which ``cpnas deploy`` compares the packed network's classes with the simulated network's."""


def deploy_report(genotype: Genotype, cfg: Config, *, dataset: str = "cifar10", size: str = "small",
                  checkpoint: str | os.PathLike | None = None, data_root: str | os.PathLike | None = None,
                  batches: Sequence[int] = (1,), thread_counts: Sequence[int] | None = None,
                  kernel_channels: Sequence[int] = KERNEL_CHANNELS, exact_images: int = 8, reps: int = 5,
                  seed: int = 0, packed_file: str | os.PathLike | None = None,
                  compile_fp32: bool = True, isas: Sequence[str] = (),
                  agreement_images: int = AGREEMENT_IMAGES) -> dict[str, Any]:
    """Pack ``genotype``'s network, check it against the simulated one, time them, size the file.

    The 32-bit baseline is the faster, per batch and thread count, of eager PyTorch in
    ``channels_last`` (oneDNN) and, with ``compile_fp32``, ``torch.compile`` of it.
    ``latency_ms`` holds the first batch at the first thread count
    (``speedup_end_to_end`` = fp32 / packed there), the ``latency`` table every
    measured batch and thread count. ``packed_file``: also write the packed model there
    (atomically). ``isas``: also time the planned network on the builds of the extension for
    these instruction sets (``packed_<isa>``, e.g. the AVX2 path on an AVX-512 machine), checked
    bit-identical to the default build first. ``agreement``: the predicted classes and the largest logit
    difference of the packed and the simulated network on ``agreement_images`` test images
    (:func:`~cpnas.deploy.pair.labelled_images`: the first of each class), with both networks' top-1
    (:func:`~cpnas.deploy.measure.agreement`); 0 skips it. Without a C++ toolchain: one log line, and only
    the 32-bit and the simulated 1-bit networks are timed (``path: "simulated"``).
    """
    from cpnas.deploy import kernels
    from cpnas.deploy.network import PackedMeta, PackedNetwork, pack_network
    from cpnas.deploy.simulated import simulate

    unavailable = kernels.toolchain_missing()
    if unavailable is None:
        try:
            kernels.extension()
        except CpnasError as exc:
            unavailable = str(exc)
    if unavailable is not None:
        log.warning("packed 1-bit kernels unavailable (%s): timing the simulated 1-bit network instead", unavailable)
    binary, real, info = build_pair(genotype, cfg, dataset=dataset, size=size, checkpoint=checkpoint, seed=seed)
    image_shape = (3, info["image_size"], info["image_size"])
    images, images_desc = sample_images(max(exact_images, CALIBRATION_IMAGES), dataset=info["dataset"],
                                        image_size=info["image_size"], data_root=data_root, seed=seed)
    noise = torch.randn((max(exact_images, CALIBRATION_IMAGES), *image_shape),
                        generator=torch.Generator().manual_seed(seed))
    if checkpoint is None:
        # both kinds of input the check uses: a channel constant over the calibration set gets variance 0, and BN
        # then maps its one value to ±0 + rounding noise × 1/√eps, a tie each net resolves its own way
        calibration = torch.cat([images, noise])
        calibrate_bn(binary, calibration)
        calibrate_bn(real, calibration)
    thread_counts = tuple(thread_counts or (torch.get_num_threads(),))
    real_cl = real.to(memory_format=torch.channels_last)
    fp32 = fp32_baselines(real_cl, compile_fp32)
    if unavailable is not None:
        nets = {**fp32, "simulated": lambda x: simulate(binary, x)}
        table = _with_fp32_baseline(network_latency(nets, image_shape, batches=batches, thread_counts=thread_counts,
                                                    reps=reps))
        first = table[f"batch{batches[0]}"][f"threads{thread_counts[0]}"]
        return {"path": "simulated", "unavailable": unavailable,
                "latency_ms": {k: first[k] for k in ("fp32", "simulated")}, "latency": table,
                "latency_batch": batches[0], "latency_threads": thread_counts[0],
                "network": {**info, "size": size, "genotype": genotype.to_dict()}, "machine": machine()}
    meta = PackedMeta(genotype=genotype.to_dict(), dataset=info["dataset"], channels=info["channels"],
                      layers=info["layers"], num_classes=info["num_classes"])
    packed = pack_network(binary, meta)
    fresh = torch.randn((exact_images, *image_shape), generator=torch.Generator().manual_seed(seed + 1))
    checks = {"images": exactness(binary, packed, images[:exact_images]),
              "random": exactness(binary, packed, fresh)}
    agreed = None
    if agreement_images:
        test_x, test_y, test_desc = labelled_images(agreement_images, dataset=info["dataset"],
                                                    image_size=info["image_size"], data_root=data_root)
        with threads(thread_counts[0]):
            agreed = {**agreement(binary, packed, test_x, test_y), "inputs": test_desc}
    op_by_op = PackedNetwork(packed.body, meta)
    op_by_op.use_plans = False
    nets = {**fp32, "simulated": lambda x: simulate(binary, x), "packed": packed, "packed_op_by_op": op_by_op}
    for isa in isas:
        nets[f"packed_{isa}"] = narrower = PackedNetwork(packed.body, meta)
        narrower.isa = isa
        if not torch.equal(narrower(images[:2]), packed(images[:2])):
            raise CpnasError(f"the {isa} build of the extension computes other logits than the default build")
    table = _with_fp32_baseline(network_latency(nets, image_shape, batches=batches, thread_counts=thread_counts,
                                                reps=reps))
    first = table[f"batch{batches[0]}"][f"threads{thread_counts[0]}"]
    kernel = kernel_1x1(kernel_channels, thread_count=thread_counts[0]) if kernel_channels else {}
    from cpnas.efficiency import profile

    flops_real, flops_binary = profile(real, image_shape).flops, profile(binary, image_shape).flops
    report_file = file_size(packed, binary, image_shape)
    with threads(thread_counts[0]):
        shares = time_shares(packed, torch.randn((batches[0], *image_shape), generator=torch.Generator().manual_seed(2)))
    if packed_file is not None:
        from cpnas.deploy.network import to_bytes
        from cpnas.io import write_bytes

        write_bytes(packed_file, to_bytes(packed))
        report_file["path"] = str(packed_file)
    return {
        "path": "packed",
        "exact": all(c["exact"] for c in checks.values()),
        "max_abs_diff": max(c["max_abs_diff"] for c in checks.values()),
        "latency_ms": {k: v for k, v in first.items() if isinstance(v, float) and k != "speedup_end_to_end"},
        "isa_paths": {isa: kernels.extension(isa).simd_path() for isa in isas},
        "latency_batch": batches[0], "latency_threads": thread_counts[0],
        "fp32_baseline": first["fp32_baseline"],
        "speedup_end_to_end": first["speedup_end_to_end"],
        "speedup_packed_vs_fp32": first["speedup_end_to_end"],
        "speedup_flops_estimate": flops_real / flops_binary,
        "paper_speedup_vs_wrn22": PAPER_SPEEDUP,
        "kernel_1x1_speedup": {c: r["speedup"] for c, r in kernel.items()},
        "kernel_1x1": kernel,
        "latency": table,
        "agreement": agreed,
        "exactness": checks, "exactness_inputs": {"images": images_desc, "random": f"{exact_images} N(0,1) inputs"},
        "file": report_file,
        "macs": macs_split(binary, image_shape),
        "packed_time_ms": shares,
        "convs": packed.counts(),
        "cells_planned": f"{packed.planned_cells()} of {len(packed.body.cells)}",
        "network": {**info, "size": size, "genotype": genotype.to_dict()},
        "machine": machine(),
    }


def machine() -> dict[str, Any]:
    """The CPU, the kernel paths compiled in (when the extension is built), the load, torch's version."""
    from cpnas.deploy import kernels
    from cpnas.dispatch import cpu_info

    out: dict[str, Any] = {"cpu": cpu_info()["model"], "cpus": os.cpu_count(), "torch": torch.__version__,
                           "load_average_1min": os.getloadavg()[0]}
    if kernels._ext is not None:
        out.update(simd_path=kernels._ext.simd_path(), depthwise_path=kernels._ext.depthwise_path())
    else:
        out.update(simd_path="simulated", depthwise_path="simulated")
    return out


def fp32_baselines(real_cl: nn.Module, compile_fp32: bool) -> dict[str, Callable[[torch.Tensor], Any]]:
    """The 32-bit network eager (``channels_last``, oneDNN) and, if asked and it compiles, ``torch.compile``-d."""
    nets: dict[str, Callable[[torch.Tensor], Any]] = {"fp32_eager": lambda x: real_cl(x)}
    if compile_fp32:
        compiled = torch.compile(real_cl)
        probe = torch.zeros(1, *_input_shape(real_cl)).contiguous(memory_format=torch.channels_last)
        try:
            with torch.no_grad():
                compiled(probe)
        except Exception as exc:  # noqa: BLE001 — any compiler failure leaves the eager baseline, said in the log
            log.warning("torch.compile of the 32-bit network failed (%s); the baseline is eager PyTorch",
                        str(exc).splitlines()[0][:200])
        else:
            nets["fp32_compiled"] = lambda x: compiled(x)
    return nets


def _input_shape(net: nn.Module) -> tuple[int, int, int]:
    from cpnas.networks import NetworkImageNet

    return (3, 224, 224) if isinstance(net, NetworkImageNet) else (3, 32, 32)


def _with_fp32_baseline(table: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Each entry gains ``fp32`` (the faster baseline), ``fp32_baseline`` (which) and ``speedup_end_to_end``."""
    for per_t in table.values():
        for ms in per_t.values():
            name = min((k for k in ("fp32_eager", "fp32_compiled") if k in ms), key=lambda k: ms[k])
            ms["fp32"] = ms[name]
            ms["fp32_baseline"] = "torch.compile" if name == "fp32_compiled" else "eager channels_last"
            if "packed" in ms:
                ms["speedup_end_to_end"] = ms["fp32"] / ms["packed"]
    return table


def found_cell(scale: str = "cpu") -> tuple[Genotype, str]:
    """The cell of ``scale``'s CP-NAS search (seed 0), or DARTS_V2 when that search is not here; and its label."""
    from cpnas.genotype import DARTS_V2, load_genotype
    from cpnas.paths import portable
    from cpnas.tables import default_genotype_path

    path = default_genotype_path(scale)
    if path.is_file():
        return load_genotype(path), f"CP-NAS cell of the {scale} search (seed 0, {portable(path)})"
    return DARTS_V2, f"DARTS_V2 (no {scale} CP-NAS search in {portable(path.parent)})"


BENCH_PLANS: dict[str, dict[str, Any]] = {
    "smoke": {"batches": (1,), "thread_counts": (1,), "paper_size": False, "kernel_channels": (64, 128),
              "compile_fp32": False, "agreement_images": 20},
}
"""What :func:`bench` measures at a scale; other scales: batches 1 and 32, 1 and 2 threads, the paper's small
size too, and the 1×1 kernel at every C of :data:`KERNEL_CHANNELS`. Smoke runs in CI seconds."""
FULL_PLAN = {"batches": (1, 32), "thread_counts": (1, 2), "paper_size": True, "kernel_channels": KERNEL_CHANNELS,
             "compile_fp32": True, "agreement_images": AGREEMENT_IMAGES}


def bench(scale: str = "cpu", *, data_root: str | os.PathLike | None = None) -> dict[str, Any]:
    """``make bench`` (e) and notebook 06: :func:`deploy_report` of ``scale``'s found cell at its small size.

    And at the paper's small size (C = 56), with the plan of :data:`BENCH_PLANS`.
    Random weights (timing needs no trained checkpoint; exactness is checked on the
    same weights). About a minute on two busy cores at the full plan.
    """
    from cpnas.config import get_config

    plan = BENCH_PLANS.get(scale, FULL_PLAN)
    genotype, label = found_cell(scale)
    res: dict[str, Any] = {"genotype": label, "scale": scale}
    for name, cfg_scale in (("scale", scale), ("paper", "paper")):
        if name == "paper" and not plan["paper_size"]:
            continue
        res[name] = deploy_report(genotype, get_config(cfg_scale), size="small", data_root=data_root,
                                  batches=plan["batches"], thread_counts=plan["thread_counts"],
                                  kernel_channels=plan["kernel_channels"] if name == "scale" else (), reps=5,
                                  compile_fp32=plan["compile_fp32"], agreement_images=plan["agreement_images"])
    res["kernel_1x1"] = res["scale"]["kernel_1x1"]
    res["kernel_1x1_threads2"] = (kernel_1x1(plan["kernel_channels"], thread_count=2)
                                  if 2 in plan["thread_counts"] else None)
    return res


BENCH_FILE = Path("results") / "bench" / "bench.json"
"""Where ``make bench`` records its results, under the project root; its ``deploy`` key is :func:`bench`'s result."""


def recorded(scale: str = "cpu") -> dict[str, Any] | None:
    """The (e) section ``make bench`` recorded in :data:`BENCH_FILE` for ``scale``'s found cell, or ``None``.

    ``None`` when the file or the section is missing, failed, or timed another scale or another cell
    than :func:`found_cell` gives now. ``measured`` names the run the timings come from.
    """
    from cpnas.io import read_json
    from cpnas.paths import portable, project_root

    path = project_root() / BENCH_FILE
    if not path.is_file():
        return None
    res = read_json(path)
    section = res.get("deploy") or {}
    if "error" in section or not isinstance(section.get("scale"), dict):
        return None
    genotype, label = found_cell(scale)  # the label names the scale of the search
    if section.get("genotype") != label or section["scale"]["network"].get("genotype") != genotype.to_dict():
        return None
    return {**section, "measured": f"`make bench` of {res.get('date', 'unknown date')} ({portable(path)})"}


def recorded_or_bench(scale: str = "cpu", *, data_root: str | os.PathLike | None = None) -> dict[str, Any]:
    """Notebook 06: :func:`recorded` where ``make bench`` timed this cell, else :func:`bench` now.

    Timings taken now differ from run to run (and take minutes); the recorded ones, with the date and the
    load of their run, keep a re-executed notebook equal to the committed one. ``measured`` says which.
    """
    return recorded(scale) or {**bench(scale, data_root=data_root), "measured": "this notebook, now"}


def markdown(res: dict[str, Any]) -> str:
    """The ``make bench`` section of :func:`bench`'s result."""
    lines = [f"## (e) 1-bit inference measured: packed XNOR-popcount vs simulated 1-bit vs 32-bit (`cpnas deploy`)",
             "", f"Cell: {res['genotype']}; random weights, BN statistics from {CALIBRATION_IMAGES} images and "
             f"{CALIBRATION_IMAGES} N(0,1) inputs. Median ms per forward (per image in brackets), the three nets "
             f"interleaved; the 1-min load average of the machine (shared with other jobs) is given per network."
             + (f" Measured by {res['measured']}." if res.get("measured") else ""), "",
             "| network | batch | threads | fp32, faster of eager / torch.compile (ms) | simulated 1-bit (ms) | "
             "packed (ms) | packed vs fp32 | FLOPs estimate |", "|---|---|---|---|---|---|---|---|"]
    for key in ("scale", "paper")[: 1 + ("paper" in res)]:
        r = res[key]
        n = r["network"]
        for b, per_t in r["latency"].items():
            batch = int(b.removeprefix("batch"))
            for t, ms in per_t.items():
                lines.append(f"| C={n['channels']}, {n['layers']} cells | {batch} | {t.removeprefix('threads')} | "
                             + " | ".join(f"{ms[k]:.1f} ({ms[k] / batch:.2f})" for k in ("fp32", "simulated", "packed"))
                             + f" | {ms['fp32'] / ms['packed']:.2f}× | {r['speedup_flops_estimate']:.1f}× |")
    lines += ["", "| network | exact | max abs logit diff | XNOR integers compared | classes equal on test images | "
              "binary MACs: depthwise / 1×1 (M) | file (Mbit) | payload (Mbit) | Table 3 accounting (Mbit, with / "
              "without BN) | load |", "|---|---|---|---|---|---|---|---|---|---|"]
    for key in ("scale", "paper")[: 1 + ("paper" in res)]:
        r = res[key]
        f, m = r["file"], r["macs"]
        compared = sum(c["integers_compared"] for c in r["exactness"].values())
        agreed = r.get("agreement")
        same = f"{agreed['classes_equal']} of {agreed['images']}" if agreed else "–"
        lines.append(f"| C={r['network']['channels']} | {r['exact']} | {r['max_abs_diff']:.1e} | {compared:,} | {same} | "
                     f"{m['binary_depthwise_macs_m']:.1f} / {m['binary_pointwise_macs_m']:.1f} | {f['file_mbit']:.2f} | "
                     f"{f['payload_mbit_excl_bn_stats']:.2f} | {f['table3_mbit']:.2f} / {f['table3_mbit_excl_bn']:.2f} | "
                     f"{r['machine']['load_average_1min']:.1f} |")
    lines += ["", f"Where the packed network's time goes (ms per forward, batch {res['scale']['latency_batch']}, "
              f"{res['scale']['latency_threads']} thread(s), forward hooks):", "",
              "| network | sep/dil convs (int8 depthwise + XNOR 1×1) | other XNOR 1×1 convs | float depthwise convs | "
              "pooling | real layers (stem, BN, classifier) | other (sums, concat, Python) | total |",
              "|---|---|---|---|---|---|---|---|"]
    for key in ("scale", "paper")[: 1 + ("paper" in res)]:
        sh = res[key]["packed_time_ms"]
        lines.append(f"| C={res[key]['network']['channels']} | " + " | ".join(
            f"{sh[k]:.2f} ({100 * sh[k] / sh['total']:.0f} %)" for k in TIME_CLASSES) + f" | {sh['total']:.2f} |")
    lines += ["", f"Packed binary 1×1 alone (sign packing + XNOR-popcount + folded BN, {KERNEL_PIXELS}×{KERNEL_PIXELS}, "
              f"batch 1) vs the faster memory format of PyTorch's 32-bit 1×1 conv "
              f"({res['scale']['machine']['simd_path']} path, {res['scale']['machine']['cpu']}):", "",
              "| C | threads | fp32 (ms) | packed (ms) | speedup | GEMM alone speedup |", "|---|---|---|---|---|---|"]
    for t, table in (("1", res["kernel_1x1"]), ("2", res.get("kernel_1x1_threads2"))):
        for c, k in (table or {}).items():
            lines.append(f"| {c} | {t} | {k['fp32_ms']:.3f} | {k['packed_ms']:.3f} | {k['speedup']:.1f}× | "
                         f"{k['gemm_speedup']:.1f}× |")
    lines += ["", f"The paper's Table 3 estimates {PAPER_SPEEDUP}× (FLOPs of WRN-22 over FLOPs of its network, "
              "binary MACs counted /64); the FLOPs estimate column is the same convention for this network over its "
              "own 32-bit twin.", ""]
    return "\n".join(lines)
