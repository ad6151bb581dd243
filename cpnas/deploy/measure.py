"""Exactness, latency and file size of the packed network against the simulated one.

* :func:`exactness` — the packed logits against the simulated 1-bit network's on the
  same inputs: the integers of every XNOR 1×1 conv must be equal and the logits
  within :data:`LOGIT_TOLERANCE`.
* :func:`network_latency` — ms per forward of the 32-bit net, the simulated 1-bit
  net and the packed net, at each batch and thread count, interleaved so that the
  load of other processes hits all three alike.
* :func:`kernel_1x1` — the packed 1×1 kernel alone (sign packing + XNOR-popcount +
  folded affine) against PyTorch's 32-bit 1×1 conv of the same shape.
* :func:`file_size` — the packed model file against Table 3's memory accounting.
All of it for one genotype: :func:`cpnas.deploy.report.deploy_report` (``cpnas deploy``,
``make bench``, notebook 06).

Timings are medians of repeated calls after a warm-up, on whatever else the
machine runs: every report records the load average next to them.
"""

from __future__ import annotations

import functools
import logging
import os
import statistics
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn

from cpnas.binary import BinaryConv2d
from cpnas.errors import CpnasError
from cpnas.timing import median_time, median_times

log = logging.getLogger(__name__)

LOGIT_TOLERANCE = 1e-5
"""Packed and simulated logits agree within 1e-5 (absolute); the integers inside agree exactly."""
KERNEL_CHANNELS = (64, 128, 256, 512)
"""The channel counts at which the packed 1×1 kernel is measured."""
KERNEL_PIXELS = 32
"""Spatial size of the 1×1 kernel benchmark: a 32×32 map, one image (a CIFAR cell's resolution)."""
PAPER_SPEEDUP = 50.24
"""Table 3: the paper's FLOPs-based speedup of the small CP-NAS network over WRN-22."""


@contextmanager
def threads(n: int) -> Iterator[None]:
    """Run with ``n`` intra-op threads, restoring the previous count."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def exactness(model: nn.Module, packed: nn.Module, inputs: torch.Tensor) -> dict[str, Any]:
    """Packed vs simulated on ``inputs``: equal XNOR integers and logits within :data:`LOGIT_TOLERANCE`.

    The packed network runs twice: op by op, recording the integers, and as it runs
    (each cell one extension call, :mod:`cpnas.deploy.cellplan`), whose logits must be
    bit-identical to the op-by-op ones (``cells_planned_equal_op_by_op``). The simulated
    network runs as it is evaluated. ``depthwise_ties`` counts the outputs of its binary
    depthwise convs whose integer sum is 0 and ``depthwise_ties_negative`` those its
    float32 conv made negative, which the packed kernel reproduces
    (:func:`~cpnas.deploy.simulated.depthwise_ties`).
    """
    from cpnas.deploy.simulated import depthwise_ties, simulate, simulated_integers

    ties: dict[str, int] = {}
    with depthwise_ties(model, ties), simulated_integers(model) as sim_ints:
        sim = simulate(model, inputs)
    with packed.trace_integers() as packed_ints:
        op_by_op = packed(inputs)
    out = packed(inputs)  # each cell as one extension call where it has a plan
    pairs = list(zip(sim_ints, packed_ints))
    differing = sum(int((a != b).sum()) for a, b in pairs if a.shape == b.shape)
    integers_equal = len(sim_ints) == len(packed_ints) and all(a.shape == b.shape for a, b in pairs) and differing == 0
    max_abs = float((sim - out).abs().max())
    return {"exact": bool(integers_equal and max_abs <= LOGIT_TOLERANCE and torch.equal(out, op_by_op)),
            "max_abs_diff": max_abs,
            "integers_equal": bool(integers_equal), "integer_tensors": len(sim_ints),
            "integers_compared": int(sum(a.numel() for a in sim_ints)), "integers_differing": differing,
            "argmax_equal": bool(torch.equal(sim.argmax(1), out.argmax(1))),
            "cells_planned_equal_op_by_op": bool(torch.equal(out, op_by_op)),
            "max_abs_logit": float(sim.abs().max()), "tolerance": LOGIT_TOLERANCE,
            "depthwise_ties": ties.get("ties", 0), "depthwise_ties_negative": ties.get("ties_negative", 0)}


def agreement(model: nn.Module, packed: nn.Module, images: torch.Tensor, labels: torch.Tensor | None = None,
              chunk: int = 100) -> dict[str, Any]:
    """The packed network's predicted classes and logits against the simulated network's on ``images``.

    Both run as they are evaluated (the simulated network with the kernel forms this
    process uses, the packed one with its cells planned), ``chunk`` images at a time.
    ``classes_equal``: on how many images the argmax agrees; ``max_abs_diff``: the largest
    absolute difference of a logit; with ``labels``, both networks' top-1 accuracy (%).
    """
    from cpnas.deploy.simulated import simulate

    sim = torch.cat([simulate(model, x) for x in images.split(chunk)])
    out = torch.cat([packed(x) for x in images.split(chunk)])
    same = int((sim.argmax(1) == out.argmax(1)).sum())
    res: dict[str, Any] = {"images": len(images), "classes_equal": same, "classes_identical": same == len(images),
                           "max_abs_diff": float((sim - out).abs().max()) if len(images) else 0.0}
    if labels is not None:
        res["top1_simulated"] = 100.0 * float((sim.argmax(1) == labels).float().mean())
        res["top1_packed"] = 100.0 * float((out.argmax(1) == labels).float().mean())
    return res


def median_ms(fn: Callable[[], Any], reps: int = 5, warmup: int = 1) -> float:
    """Median wall-clock of ``fn()`` in ms over ``reps`` calls after ``warmup`` calls (:func:`cpnas.timing.median_time`)."""
    return 1e3 * median_time(fn, reps=reps, warmup=warmup)


def network_latency(nets: dict[str, Callable[[torch.Tensor], Any]], image_shape: Sequence[int], *,
                    batches: Sequence[int] = (1, 64), thread_counts: Sequence[int] = (1, 2),
                    reps: int = 5, reps_large: int = 2) -> dict[str, dict[str, dict[str, float]]]:
    """``{f"batch{b}": {f"threads{t}": {name: ms per forward}}}``; nets interleaved rep by rep.

    ``reps_large`` repetitions at batches above 8 (seconds each at the paper's size).
    """
    out: dict[str, dict[str, dict[str, float]]] = {}
    g = torch.Generator().manual_seed(0)
    for b in batches:
        x = torch.randn((b, *image_shape), generator=g).contiguous(memory_format=torch.channels_last)
        n = reps if b <= 8 else reps_large
        for t in thread_counts:
            with threads(t), torch.no_grad():  # one warm-up call each (and first-use dispatch timing)
                seconds = median_times({name: functools.partial(fn, x) for name, fn in nets.items()}, reps=n, warmup=1)
            out.setdefault(f"batch{b}", {})[f"threads{t}"] = {k: 1e3 * s for k, s in seconds.items()}
    return out


def kernel_1x1(channels: Sequence[int] = KERNEL_CHANNELS, *, size: int = KERNEL_PIXELS, batch: int = 1,
               thread_count: int = 1, reps: int = 20) -> dict[str, dict[str, float]]:
    """The packed binary 1×1 (pack + XNOR-popcount GEMM + folded affine) vs PyTorch's 32-bit 1×1 conv.

    Same shape (``batch × C × size × size`` → C channels). The 32-bit conv is timed in
    both memory formats and the faster is the baseline.
    """
    from cpnas.deploy import kernels
    from cpnas.deploy.packed import PackedConv1x1

    res: dict[str, dict[str, float]] = {}
    g = torch.Generator().manual_seed(0)
    for c in channels:
        conv = BinaryConv2d(c, c, 1, bias=False)
        with torch.no_grad():
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=g))
        packed = PackedConv1x1.fold(conv, torch.ones(c, dtype=torch.float64), torch.zeros(c, dtype=torch.float64))
        x = torch.randn(batch, c, size, size, generator=g)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        w = torch.randn(c, c, 1, 1, generator=g)
        rows, _ = packed._rows(x_cl)
        bits = kernels.pack_signs(rows)
        with threads(thread_count), torch.no_grad():
            fp32_cl = median_ms(lambda: torch.nn.functional.conv2d(x_cl, w), reps)
            fp32_nchw = median_ms(lambda: torch.nn.functional.conv2d(x, w), reps)
            packed_ms = median_ms(lambda: packed(x_cl), reps)
            gemm_ms = median_ms(lambda: kernels.xnor_gemm(bits, packed.weight_t, packed.scale, packed.bias, c), reps)
        fp32 = min(fp32_cl, fp32_nchw)
        res[str(c)] = {"fp32_ms": fp32, "fp32_format": "channels_last" if fp32_cl <= fp32_nchw else "contiguous",
                       "packed_ms": packed_ms, "xnor_gemm_ms": gemm_ms, "speedup": fp32 / packed_ms,
                       "gemm_speedup": fp32 / gemm_ms}
    return res


TIME_CLASSES = ("binary_conv", "xnor_1x1", "float_depthwise", "pooling", "real_layers", "other")
"""Kernel classes of :func:`time_shares`."""


def time_shares(packed: nn.Module, x: torch.Tensor, reps: int = 3) -> dict[str, float]:
    """ms per forward of the packed network spent in each class of kernel (forward hooks), and the rest.

    ``binary_conv``: sep_conv / dil_conv as one extension call (sign, int8 depthwise,
    XNOR-popcount pointwise, folded BN); ``xnor_1x1``: the other packed 1×1 convs
    (preprocessing, factorized reduce); ``float_depthwise``: depthwise convs whose
    input stays real (Table 2's ``*``); ``pooling``: 3×3 pools; ``real_layers``: stem,
    BN, classifier; ``other``: node sums, concatenations, slicing, Python. These are
    timed op by op (``total``). With each cell one extension call, ``planned_stem``,
    ``planned_cells`` and ``planned_head`` (pooling and classifier) split the forward
    (``planned_total``).
    """
    from cpnas.deploy.packed import PackedConv1x1, PackedDepthwise, PackedDilConv, PackedPool, PackedSepConv

    kinds = (((PackedSepConv, PackedDilConv), "binary_conv"), (PackedConv1x1, "xnor_1x1"),
             (PackedDepthwise, "float_depthwise"), ((PackedPool, nn.MaxPool2d, nn.AvgPool2d), "pooling"),
             ((nn.Conv2d, nn.BatchNorm2d, nn.AdaptiveAvgPool2d, nn.Linear), "real_layers"))
    spent = {name: 0.0 for name in TIME_CLASSES if name != "other"}
    starts: dict[int, float] = {}
    handles = []
    timed: list[str] = []
    for path, m in packed.named_modules():
        name = next((n for t, n in kinds if isinstance(m, t)), None)
        if name is None or any(path.startswith(p + ".") for p in timed):
            continue  # the outermost classified module holds the time
        timed.append(path)
        handles.append(m.register_forward_pre_hook(lambda mod, a: starts.__setitem__(id(mod), time.perf_counter())))
        handles.append(m.register_forward_hook(
            lambda mod, a, out, name=name: spent.__setitem__(name, spent[name] + time.perf_counter() - starts[id(mod)])))
    planned = getattr(packed, "use_plans", False)
    try:
        packed.use_plans = False
        packed(x)  # warm-up
        spent = {k: 0.0 for k in spent}
        start = time.perf_counter()
        for _ in range(reps):
            packed(x)
        total = (time.perf_counter() - start) / reps
    finally:
        packed.use_plans = planned
        for h in handles:
            h.remove()
    shares = {k: 1e3 * v / reps for k, v in spent.items()}
    shares["other"] = 1e3 * total - sum(shares.values())
    shares["total"] = 1e3 * total
    if planned:
        packed(x)
        packed.clock = clock = {}
        try:
            for _ in range(reps):
                packed(x)
        finally:
            packed.clock = None
        shares.update({f"planned_{k}": 1e3 * v / reps for k, v in clock.items()})
        shares["planned_total"] = sum(shares[f"planned_{k}"] for k in clock)
    return shares


def file_size(packed: nn.Module, model: nn.Module, image_shape: Sequence[int]) -> dict[str, Any]:
    """Bytes of the packed file and its payload, against Table 3's memory accounting of ``model``."""
    from cpnas.deploy.network import payload_bits, to_bytes
    from cpnas.efficiency import profile

    prof = profile(model, tuple(image_shape))
    blob = to_bytes(packed)
    payload = payload_bits(packed)
    return {"file_bytes": len(blob), "file_mbit": 8 * len(blob) / 1e6,
            "payload_mbit": sum(payload.values()) / 1e6,
            "payload_mbit_excl_bn_stats": (payload["sign_words"] + payload["real"]) / 1e6,
            "sign_words_mbit": payload["sign_words"] / 1e6, "real_mbit": payload["real"] / 1e6,
            "table3_mbit": prof.memory_mbit, "table3_mbit_excl_bn": prof.without_norm().memory_mbit,
            "flops_m": prof.flops_m}


def macs_split(model: nn.Module, image_shape: Sequence[int]) -> dict[str, float]:
    """Per-image MACs (M) of the binary depthwise convs, the binary 1×1 convs and the real layers."""
    from cpnas.efficiency import profile

    modules = dict(model.named_modules())
    split = {"binary_depthwise_macs_m": 0.0, "binary_pointwise_macs_m": 0.0, "real_macs_m": 0.0}
    for row in profile(model, tuple(image_shape)).layers:
        m = modules.get(row.name)
        if isinstance(m, BinaryConv2d) and m.groups > 1:
            split["binary_depthwise_macs_m"] += (row.binary_macs + row.real_macs) / 1e6
        elif row.binary_macs:
            split["binary_pointwise_macs_m"] += row.binary_macs / 1e6
            split["real_macs_m"] += row.real_macs / 1e6
        else:
            split["real_macs_m"] += row.real_macs / 1e6
    return split
