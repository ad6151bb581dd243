"""``make bench``: speed measured side by side in one run, reported as ratios.

(a) Training throughput (images/s) of one sampled path of the paper's search
    network (C = 16, 6 cells, 32×32 inputs), 1-bit Child vs 32-bit Parent, same
    path, same batch, and their step-time ratio (goal: 1-bit/32-bit ≤ 1.15).
(b) Wall-clock of one ``cpnas`` search epoch (Child + Parent training and scoring)
    vs one ``pcdarts`` search epoch (weight and α steps, after warm-up) on the same
    images at the same scale, and the projected total search time of each at the
    paper's schedule (105 CP-NAS epochs on 50 % + 5 % of CIFAR-10; 50 PC-DARTS
    epochs on 50 % + 50 %), i.e. the paper's "30 % faster than PC-DARTS" (§3.2)
    checked on this machine.

(f) ``--data-parallel on|only`` (on in ``make bench``): training throughput of ``cpnas train`` at a
    smoke size on synthetic data in one process vs two gloo processes under torchrun
    (:mod:`cpnas.distributed`), same global batch, one thread each, as a ratio. On a
    2-core CPU that ratio need not exceed 1: it measures the overhead of the
    all-reduces as much as the split work; on GPUs the same command scales out.

Results go to ``<out>/bench.json`` and ``<out>/bench.md``. Timings are medians of
repeated steps after warm-up; the machine, thread count and torch version are
recorded with them. Run ``python -m cpnas.bench --help`` for the options.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cpnas import accel, dispatch
from cpnas.binary import BINARY, REAL, REAL_RELU, Precision
from cpnas.config import get_config
from cpnas.io import write_json, write_text
from cpnas.networks import SearchNetwork, memory_format_for
from cpnas.ops import PRIMITIVES
from cpnas.paths import portable
from cpnas.runs.files import HISTORY
from cpnas.space import SampledPath
from cpnas.space import covering_path
from cpnas.timing import load_average as _load_avg, median_time as _time

log = logging.getLogger(__name__)

CIFAR_TRAIN = 50_000


def bench_path() -> SampledPath:
    """A fixed path that uses every op in both cells (no 'none'), so both precisions do the same work."""
    return covering_path()


class _WhereSign(torch.autograd.Function):
    """The textbook sign + clipped STE (``where`` forms): the plain baseline, for reference only."""

    @staticmethod
    def forward(ctx, t):
        ctx.save_for_backward(t)
        return torch.where(t >= 0, 1.0, -1.0)

    @staticmethod
    def backward(ctx, gout):
        (t,) = ctx.saved_tensors
        return torch.where(t.abs() <= 1, gout, 0.0)


class NaiveBinaryConv2d(torch.nn.Conv2d):
    """The plain eager 1-bit conv: ``F.conv2d(sign(x), α·sign(W))``, no rewrite of ours."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        alpha = w.abs().mean(dim=(1, 2, 3), keepdim=True)
        return torch.nn.functional.conv2d(_WhereSign.apply(x), alpha * _WhereSign.apply(w), None, self.stride,
                                          self.padding, self.dilation, self.groups)


@dataclass(frozen=True)
class _NaivePrecision(Precision):
    """1-bit weights and activations through :class:`NaiveBinaryConv2d` (the baseline of ``make bench``)."""

    def conv(self, c_in, c_out, kernel_size, stride=1, padding=0, dilation=1, groups=1, *, real_input=False,
             block_input=False):
        return NaiveBinaryConv2d(c_in, c_out, kernel_size, stride, padding, dilation, groups, bias=False)


NAIVE_BINARY = _NaivePrecision(binary=True)


def _median_step(net, path, x, y, steps: int, warmup: int) -> float:
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)

    def step():
        opt.zero_grad(set_to_none=True)
        with accel.autocast(x.device):  # --amp bf16 on CUDA (cpnas.accel); a no-op otherwise
            loss = torch.nn.functional.cross_entropy(net(x, path), y)
        loss.backward()
        opt.step()
        if x.is_cuda:
            torch.cuda.synchronize()

    return _time(step, reps=steps, warmup=warmup)


def throughput(batch: int = 64, steps: int = 5, warmup: int = 2, device: str = "cpu",
               threads: int | None = None) -> dict[str, Any]:
    """(a): img/s of a training step of the paper's search network, same path, interleaved:

    * ``binary`` — our 1-bit Child, in the memory format and kernel forms the dispatch chose;
    * ``real`` — the same network at 32 bits with no activation function (``REAL``): the
      1-bit step against the bare 32-bit ops, the issue-16 ratio ``binary_over_real_step_time``;
    * ``parent`` — the 32-bit Parent as the search builds it: with DARTS' ReLU before each
      conv block when ``search.parent_relu`` (the default), so a 1-bit sign stands against a
      32-bit ReLU, one element-wise pass each (``binary_over_parent_step_time``);
    * ``naive_binary`` — the plain eager 1-bit net (:class:`NaiveBinaryConv2d`, contiguous memory).

    ``threads`` sets torch's intra-op threads for the measurement (default: as they are);
    :func:`run` measures at 1 thread too, the setting of every ``cpu`` run (two one-thread
    processes side by side), where the memory passes of the 1-bit path weigh differently.
    """
    if threads is not None:
        from cpnas.deploy.measure import threads as using_threads

        with using_threads(threads):
            return {**throughput(batch, steps, warmup, device), "threads": threads}
    s = get_config("paper").search
    dev = torch.device(device)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, 32, 32, generator=g).to(dev)
    y = torch.randint(0, 10, (batch,), generator=g).to(dev)
    path = bench_path()
    out: dict[str, Any] = {"batch": batch, "C": s.init_channels, "layers": s.layers}
    nets, inputs = {}, {}
    parent = REAL_RELU if s.parent_relu else REAL
    out["parent_relu"] = s.parent_relu
    for name, prec in (("binary", BINARY), ("real", REAL), ("parent", parent), ("naive_binary", NAIVE_BINARY)):
        torch.manual_seed(0)
        net = SearchNetwork(s.init_channels, 10, s.layers, s.reduction_layers, prec).to(dev)
        fmt = (torch.contiguous_format if name == "naive_binary" else
               memory_format_for(net, dev, input_shape=tuple(x.shape), forward=lambda n, t: n(t, path)))
        out[f"{name}_memory_format"] = "channels_last" if fmt == torch.channels_last else "contiguous"
        nets[name] = accel.compile_ops(net.to(memory_format=fmt))  # --compile on CUDA: each candidate op
        inputs[name] = x.contiguous(memory_format=fmt)
    out["channels_last"] = out["binary_memory_format"] == "channels_last"
    # interleave the nets so that load changes on a shared machine hit all of them
    step: dict[str, list[float]] = {name: [] for name in nets}
    for _ in range(2):
        for name, net in nets.items():
            step[name].append(_median_step(net, path, inputs[name], y, steps, warmup))
    for name in nets:
        t = min(step[name])
        out[f"{name}_step_s"] = t
        out[f"{name}_img_per_s"] = batch / t
    out["binary_over_real_step_time"] = out["binary_step_s"] / out["real_step_s"]
    out["binary_over_parent_step_time"] = out["binary_step_s"] / out["parent_step_s"]
    out["acceleration"] = accel.describe()
    out["speedup_vs_naive"] = out["naive_binary_step_s"] / out["binary_step_s"]
    return out


def operator_times(threads: int = 1, batch: int = 64, steps: int = 3, top: int = 8, channels: int | None = None,
                   layers: int | None = None) -> dict[str, Any]:
    """Top operators by self CPU time of (a)'s training step, per net: 1-bit Child, 32-bit
    without activation, and the 32-bit Parent as searched (``torch.profiler``, ``threads``
    intra-op threads, ``steps`` steps after one warm-up step). What the 1-bit path adds shows
    as the operators its list has and the others lack.

    ``channels``/``layers`` default to the paper's search network (C = 16, 6 cells).
    """
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from cpnas.deploy.measure import threads as using_threads

    s = get_config("paper").search
    c, n_layers = channels or s.init_channels, layers or s.layers
    reductions = s.reduction_layers if layers is None else (n_layers // 3, 2 * n_layers // 3)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)
    path = bench_path()
    out: dict[str, Any] = {"threads": threads, "batch": batch, "steps": steps, "C": c, "layers": n_layers, "nets": {}}
    with using_threads(threads):
        for name, prec in (("binary", BINARY), ("real", REAL), ("parent", REAL_RELU if s.parent_relu else REAL)):
            torch.manual_seed(0)
            net = SearchNetwork(c, 10, n_layers, reductions, prec)
            fmt = memory_format_for(net, torch.device("cpu"), input_shape=tuple(x.shape),
                                    forward=lambda m, t: m(t, path))
            net, xi = net.to(memory_format=fmt), x.contiguous(memory_format=fmt)
            _median_step(net, path, xi, y, 1, 0)  # warm-up outside the profile (dispatch timings, allocator)
            with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
                _median_step(net, path, xi, y, steps, 0)
            events = prof.key_averages()
            total = sum(e.self_cpu_time_total for e in events)
            rows = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
            out["nets"][name] = {"self_cpu_s": total / 1e6, "top": [
                {"op": e.key, "self_cpu_s": e.self_cpu_time_total / 1e6, "calls": e.count} for e in rows]}
    for name in ("real", "parent"):
        out[f"binary_over_{name}_self_cpu"] = out["nets"]["binary"]["self_cpu_s"] / out["nets"][name]["self_cpu_s"]
    return out


def operator_times_markdown(p: dict[str, Any]) -> str:
    """:func:`operator_times`' result as markdown: one table of the top operators per net, side by side."""
    names = {"binary": "1-bit Child", "real": "32-bit, no activation", "parent": "32-bit Parent as searched"}
    lines = [f"## Profile of (a)'s training step: C = {p['C']}, {p['layers']} cells, batch {p['batch']}, "
             f"{p['steps']} steps, {p['threads']} thread(s), `torch.profiler` self CPU time", "",
             "| rank | " + " | ".join(f"{names[n]} | s" for n in p["nets"]) + " |",
             "|---|" + "---|---|" * len(p["nets"])]
    depth = max(len(v["top"]) for v in p["nets"].values())
    for i in range(depth):
        cells = []
        for v in p["nets"].values():
            e = v["top"][i] if i < len(v["top"]) else None
            cells += [f"`{e['op']}` ({e['calls']} calls)", f"{e['self_cpu_s']:.3f}"] if e else ["", ""]
        lines.append(f"| {i + 1} | " + " | ".join(cells) + " |")
    lines.append("| total | " + " | ".join(f"| {v['self_cpu_s']:.3f}" for v in p["nets"].values()) + " |")
    lines += ["", f"1-bit / 32-bit self CPU: {p['binary_over_real_self_cpu']:.2f} (no activation), "
                  f"{p['binary_over_parent_self_cpu']:.2f} (the Parent as searched).", ""]
    return "\n".join(lines)


def training_throughput(channels: tuple[int, ...] = (8, 16), steps: int = 6, warmup: int = 2,
                        device: str = "cpu", threads: int = 1) -> dict[str, Any]:
    """(d): images/s per thread of a ``cpu``-recipe training step of the 1-bit DARTS_V2 evaluation net.

    The ``cpu`` preset's network (8 cells, 32×32, its batch and optimizer), at each
    width in ``channels``, with ``threads`` intra-op threads (1: how ``cpu`` runs train,
    side by side in one-thread processes); the ``cpu`` scale's per-run budget follows from it.
    """
    from cpnas.deploy.measure import threads as using_threads

    with using_threads(threads):
        return _training_throughput(channels, steps, warmup, device)


def _training_throughput(channels: tuple[int, ...], steps: int, warmup: int, device: str) -> dict[str, Any]:
    from cpnas.data import DEFAULT_DATASET, get_dataset, train_config
    from cpnas.genotype import DARTS_V2
    from cpnas.train import recipe_optimizer

    cfg = get_config("cpu")
    t = train_config(cfg, DEFAULT_DATASET)
    spec = get_dataset(DEFAULT_DATASET)
    network = spec.network_class()
    dev = torch.device(device)
    out: dict[str, Any] = {"batch": t.batch_size, "layers": t.layers, "optimizer": t.optimizer,
                           "threads": torch.get_num_threads()}
    g = torch.Generator().manual_seed(0)
    x = torch.randn(t.batch_size, 3, 32, 32, generator=g).to(dev)
    y = torch.randint(0, 10, (t.batch_size,), generator=g).to(dev)
    for c in channels:
        torch.manual_seed(0)
        net = network(DARTS_V2, C=c, num_classes=spec.num_classes, layers=t.layers,
                      auxiliary=t.auxiliary_weight > 0, precision=BINARY).to(dev)
        fmt = memory_format_for(net, dev, input_shape=tuple(x.shape))
        net.to(memory_format=fmt).train()
        xi = x.contiguous(memory_format=fmt)
        opt = recipe_optimizer(net, t)

        def step(net=net, xi=xi, opt=opt):
            opt.zero_grad(set_to_none=True)
            logits = net(xi)
            logits = logits[0] if isinstance(logits, tuple) else logits
            torch.nn.functional.cross_entropy(logits, y).backward()
            opt.step()
            if dev.type == "cuda":
                torch.cuda.synchronize()

        step_s = _time(step, reps=steps, warmup=warmup)
        out[f"C{c}"] = {"step_s": step_s, "img_per_s": t.batch_size / step_s,
                        "img_per_s_per_thread": t.batch_size / step_s / torch.get_num_threads(),
                        "memory_format": "channels_last" if fmt == torch.channels_last else "contiguous"}
    return out


def search_epochs(scale: str = "cpu", images: int = 512, device: str = "cpu") -> dict[str, Any]:
    """(b): one cpnas epoch vs one pcdarts epoch on the same synthetic images at ``scale``."""
    from cpnas import data as D
    from cpnas.strategy_base import SearchContext, get_strategy

    cfg = get_config(scale, {"search.pc_batch_size": get_config(scale).search.batch_size})
    s = cfg.search
    dev = torch.device(device)
    pool = D.synthetic_images(2 * images, seed=0)
    train = D.subset(pool, torch.arange(images))
    other = D.subset(pool, torch.arange(images, 2 * images))
    paper_s = get_config("paper").search  # the paper's score : train ratio (5 % : 50 %), which the projection assumes
    n_score = max(1, round(images * paper_s.score_fraction / paper_s.train_fraction))
    score = D.subset(other, torch.arange(n_score))
    mk = lambda d, shuffle, aug, bs=s.batch_size: D.TensorLoader(d, bs, shuffle=shuffle, augment=aug,  # noqa: E731
                                                                 device=dev, seed=0)
    results: dict[str, Any] = {"scale": scale, "images": images, "score_images": n_score,
                               "batch": s.batch_size, "C": s.init_channels, "layers": s.layers}
    ctx = SearchContext(cfg=cfg, device=dev, train_loader=mk(train, True, True), score_loader=mk(score, False, False),
                        num_classes=10, seed=0, beta_p=s.beta_p)
    cp = get_strategy("cpnas")(ctx)
    t0 = time.perf_counter()
    cp.run_epoch(0)
    results["cpnas_epoch_s"] = time.perf_counter() - t0

    ctx_pc = SearchContext(cfg=get_config(scale, {"search.pc_warmup_epochs": 1, "search.pc_epochs": 2,
                                                  "search.pc_batch_size": s.batch_size}),
                           device=dev, train_loader=mk(train, True, True), score_loader=mk(score, False, False),
                           num_classes=10, seed=0, beta_p=0.0, arch_loader=mk(other, True, True))
    pc = get_strategy("pcdarts")(ctx_pc)
    # PC-DARTS' own code evaluates only at the end, so its per-epoch evaluation is left out.
    results["pcdarts_warmup_epoch_s"] = pc.run_epoch(0)["train_seconds"]  # weights only
    results["pcdarts_epoch_s"] = pc.run_epoch(1)["train_seconds"]  # weight + α steps

    # Projection to the paper's schedule: time scales with the images an epoch trains on.
    paper_cfg = get_config("paper")
    paper = paper_cfg.search
    scale_up = paper.train_fraction * CIFAR_TRAIN / images
    results["projected_cpnas_s"] = len(get_strategy("cpnas").plan(paper_cfg)[0]) * results["cpnas_epoch_s"] * scale_up
    pc_plan = get_strategy("pcdarts").plan(paper_cfg)[0]
    warmup = sum(not epoch["arch_updates"] for epoch in pc_plan)
    results["projected_pcdarts_s"] = scale_up * (warmup * results["pcdarts_warmup_epoch_s"]
                                                 + (len(pc_plan) - warmup) * results["pcdarts_epoch_s"])
    results["cpnas_over_pcdarts_total"] = results["projected_cpnas_s"] / results["projected_pcdarts_s"]
    return results


def kernels(device: str = "cpu") -> dict[str, Any]:
    """(c): the exact CPU rewrites, each timed against the plain PyTorch form side by side (forward + backward).

    * a dilated depthwise conv (``dil_conv_3x3`` / ``_5x5``) as :func:`cpnas.fastconv.conv2d`
      (space-to-batch) vs ``F.conv2d`` with ``dilation=2``;
    * sign + clipped STE: the torch form (copysign / hardtanh_backward) and :func:`cpnas.binary.sign` (that or
      the one-pass C++ form of :mod:`cpnas.signext`, as dispatched) vs the textbook ``where`` form.
    """
    import torch.nn.functional as F

    from cpnas import fastconv
    from cpnas.binary import sign

    dev = torch.device(device)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 28, 32, 32, generator=g).to(dev, memory_format=torch.channels_last)
    grad = torch.randn(x.shape, generator=g).to(dev, memory_format=torch.channels_last)
    out: dict[str, Any] = {"input": list(x.shape), "device": device}
    for k in (3, 5):
        w = torch.randn(28, 1, k, k, generator=g).to(dev)
        pad = k - 1  # dilation 2

        def run(conv, w=w, pad=pad):
            xi = x.detach().requires_grad_()
            wi = w.detach().requires_grad_()
            conv(xi, wi, None, 1, pad, 2, 28).backward(grad)

        run(fastconv.conv2d)  # the dispatch measures this shape now (or reads its cached choice)
        native, rewrite, dispatched = (_time(lambda: run(F.conv2d)), _time(lambda: run(fastconv.space_to_batch_conv2d)),
                                       _time(lambda: run(fastconv.conv2d)))
        chosen = [f for key, f in dispatch.chosen().get("dilated_conv", {}).items()
                  if key.startswith(f"({tuple(x.shape)}, (28, 1, {k}, {k})")]
        out[f"dil_conv_{k}x{k}"] = {"native_s": native, "rewrite_s": rewrite, "fast_s": dispatched,
                                    "rewrite_speedup": native / rewrite, "speedup": native / dispatched,
                                    "chosen": chosen[-1] if chosen else None}

    def run_sign(fn):
        xi = x.detach().requires_grad_()
        fn(xi).backward(grad)

    from cpnas.binary import _SignSTE

    run_sign(sign)  # the dispatch measures the torch and C++ forms of this shape now (or reads its cached choice)
    ref, torch_form, ours = (_time(lambda: run_sign(_WhereSign.apply), 20), _time(lambda: run_sign(_SignSTE.apply), 20),
                             _time(lambda: run_sign(sign), 20))
    chosen = [f for key, f in dispatch.chosen().get("sign", {}).items() if key.startswith(f"({tuple(x.shape)}")]
    out["sign_ste"] = {"native_s": ref, "rewrite_s": torch_form, "fast_s": ours, "rewrite_speedup": ref / torch_form,
                       "speedup": ref / ours, "chosen": chosen[-1] if chosen else "torch"}
    return out


def _one_thread_line(t: dict[str, Any] | None) -> list[str]:
    """(a) at one thread, in one line of markdown (nothing when it was not measured)."""
    if not t:
        return []
    return [f"At 1 thread (how every `cpu` run trains): 1-bit {t['binary_step_s']:.3f} s, 32-bit without "
            f"activation {t['real_step_s']:.3f} s, 32-bit Parent {t['parent_step_s']:.3f} s, plain 1-bit "
            f"{t['naive_binary_step_s']:.3f} s a step; **1-bit / 32-bit: {t['binary_over_real_step_time']:.2f}** "
            f"(against the Parent: {t['binary_over_parent_step_time']:.2f}), **ours / plain: "
            f"{t['speedup_vs_naive']:.2f}×**.", ""]


def markdown(res: dict[str, Any]) -> str:
    a, b = res["throughput"], res["search"]
    lines = [
        f"# cpnas benchmark ({res['date']}, torch {res['torch']}, {res['threads']} threads)",
        "",
        f"Load average (1/5/15 min) at the start: {res.get('load_avg_start')}, at the end: "
        f"{res.get('load_avg_end')} ({res['threads']} threads of {os.cpu_count()} cores; a load above the "
        f"thread count means other work shared the cores).",
        "",
        f"Machine: {res['machine']}; CPU {res.get('cpu_model', '?')} "
        f"(AVX-512: {'yes' if res.get('avx512') else 'no'}, AVX2: {'yes' if res.get('avx2') else 'no'}).",
        "",
        f"## (a) Training step of one sampled path, paper search network (C={a['C']}, {a['layers']} cells, "
        f"32×32, batch {a['batch']}), the four nets interleaved",
        "",
        "| net | memory format | step (s) | images/s |",
        "|---|---|---|---|",
        f"| 1-bit Child (ours) | {a['binary_memory_format']} | {a['binary_step_s']:.3f} | {a['binary_img_per_s']:.1f} |",
        f"| 32-bit, no activation function (ours) | {a['real_memory_format']} | {a['real_step_s']:.3f} | "
        f"{a['real_img_per_s']:.1f} |",
        f"| 32-bit Parent as searched ({'ReLU before each conv block' if a['parent_relu'] else 'no ReLU'}, "
        f"`search.parent_relu`) | {a['parent_memory_format']} | {a['parent_step_s']:.3f} | {a['parent_img_per_s']:.1f} |",
        f"| 1-bit plain eager (`F.conv2d(sign(x), α·sign(W))`, `where` STE) | {a['naive_binary_memory_format']} | "
        f"{a['naive_binary_step_s']:.3f} | {a['naive_binary_img_per_s']:.1f} |",
        "",
        f"**1-bit / 32-bit step time: {a['binary_over_real_step_time']:.2f}** (goal ≤ 1.10; against the "
        f"32-bit Parent as searched: {a['binary_over_parent_step_time']:.2f}); "
        f"**ours / plain 1-bit speed: {a['speedup_vs_naive']:.2f}×** (goal ≥ 2).",
        "",
        *_one_thread_line(res.get("throughput_1thread")),
        f"## (b) One search epoch on the same {b['images']} images, scale `{b['scale']}` "
        f"(C={b['C']}, {b['layers']} cells, batch {b['batch']})",
        "",
        "| strategy | epoch (s) | projected paper search (h) |",
        "|---|---|---|",
        f"| cpnas (Child + Parent + scoring {b['score_images']} images) | {b['cpnas_epoch_s']:.1f} | "
        f"{b['projected_cpnas_s'] / 3600:.2f} (105 epochs) |",
        f"| pcdarts warm-up (weight steps) | {b['pcdarts_warmup_epoch_s']:.1f} | |",
        f"| pcdarts (weight + α steps) | {b['pcdarts_epoch_s']:.1f} | {b['projected_pcdarts_s'] / 3600:.2f} "
        f"(15 warm-up + 35 epochs) |",
        "",
        f"**CP-NAS / PC-DARTS projected search time: {b['cpnas_over_pcdarts_total']:.2f}** "
        f"(the paper: CP-NAS 30 % faster, i.e. ≈ 0.70, on 6 TITAN V GPUs). Projection: per-image epoch cost × "
        f"images per epoch at the paper's data fractions × epochs.",
        "",
    ]
    if res.get("kernels"):
        k = res["kernels"]
        lines += [f"## (c) Exact rewrites vs the plain PyTorch form, forward + backward, input {k['input']}",
                  "", "| kernel | plain (ms) | rewrite (ms) | rewrite speed-up | dispatched (ms) | form chosen |",
                  "|---|---|---|---|---|---|"]
        for name, label in (("dil_conv_3x3", "dilated depthwise 3×3 (d = 2): space-to-batch"),
                            ("dil_conv_5x5", "dilated depthwise 5×5 (d = 2): space-to-batch"),
                            ("sign_ste", "sign + clipped STE: copysign / hardtanh_backward vs where; "
                                         "dispatched: that or the one-pass C++ form (ext)")):
            r = k[name]
            lines.append(f"| {label} | {1e3 * r['native_s']:.1f} | {1e3 * r['rewrite_s']:.1f} | "
                         f"{r['rewrite_speedup']:.2f}× | {1e3 * r['fast_s']:.1f} | {r['chosen']} |")
        lines.append("")
    if res.get("dispatch_timings"):
        lines += ["### Forms the dispatch measured in this run (median s of each form; the fastest is used)", "",
                  "| op | key | timings | chosen |", "|---|---|---|---|"]
        for key, t in res["dispatch_timings"].items():
            op, _, rest = key.partition("|")
            best = min(t, key=t.get)
            lines.append(f"| {op} | `{rest}` | " + ", ".join(f"{f} {1e3 * v:.1f} ms" for f, v in t.items())
                         + f" | {best} |")
        lines.append("")
    if res.get("training"):
        d = res["training"]
        lines += [f"## (d) `cpu`-recipe training step, 1-bit DARTS_V2 evaluation net ({d['layers']} cells, 32×32, "
                  f"batch {d['batch']}, {d['optimizer']}, {d['threads']} thread(s))", "",
                  "| C | memory format | step (s) | images/s per thread |", "|---|---|---|---|"]
        for key, r in d.items():
            if key.startswith("C") and isinstance(r, dict):
                lines.append(f"| {key[1:]} | {r['memory_format']} | {r['step_s']:.3f} | "
                             f"{r['img_per_s_per_thread']:.1f} |")
        lines.append("")
    if res.get("deploy"):
        from cpnas.deploy.report import markdown as deploy_markdown

        lines.append(deploy_markdown(res["deploy"]) if "error" not in res["deploy"]
                     else f"## (e) 1-bit inference measured: skipped ({res['deploy']['error']})\n")
    if res.get("compile"):
        from cpnas.compilebench import compile_markdown

        lines += ["", compile_markdown(res["compile"])]
    dp = res.get("data_parallel")
    if dp:
        one = dp["runs"].get(1) or dp["runs"].get("1")
        lines += ["", "## (f) `cpnas train` in 1 vs 2 gloo processes (torchrun), same global batch, one thread each",
                  "", "| processes | images/s (2nd epoch) | vs 1 process |", "|---|---|---|"]
        for n, r in dp["runs"].items():
            lines.append(f"| {n} | {r['images_per_s']:.1f} | {r['images_per_s'] / one['images_per_s']:.2f}× |")
        lines += ["", "On 2 cores the ratio measures the all-reduce overhead as much as the split work."]
    return "\n".join(lines)


def deploy(scale: str = "cpu") -> dict[str, Any]:
    """(e): the packed XNOR-popcount network vs the simulated 1-bit and the 32-bit one (:mod:`cpnas.deploy`)."""
    from cpnas.deploy import report
    from cpnas.errors import CpnasError

    try:
        return report.bench(scale)
    except CpnasError as exc:  # no compiler: the rest of the benchmark still runs
        return {"error": str(exc)}


def run(out: Path, scale: str = "cpu", batch: int = 64, images: int = 512, device: str = "cpu") -> dict[str, Any]:
    dispatch.reset(ignore_disk=True)  # measure every form afresh, side by side in this run
    info = dispatch.cpu_info()
    flags = set(info["flags"].split())
    res = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{platform.machine()} {platform.processor()}".strip(),
           "cpu_model": info["model"], "avx2": "avx2" in flags, "avx512": "avx512f" in flags,
           "device": device, "threads": torch.get_num_threads(), "torch": torch.__version__,
           "dispatch_cache": portable(dispatch.cache_path()), "forced_forms": dispatch.forced(),
           "load_avg_start": _load_avg()}
    res["kernels"] = kernels(device=device) if device == "cpu" else None
    res["throughput"] = throughput(batch=batch, device=device)
    if device == "cpu" and torch.get_num_threads() > 1:
        res["throughput_1thread"] = throughput(batch=batch, device=device, threads=1)
    res["training"] = training_throughput(device=device)
    res["search"] = search_epochs(scale=scale, images=images, device=device)
    # (e) also times the paper's C = 56 network (about a minute): not at smoke scale, which tests/test_deploy.py covers
    res["deploy"] = deploy(scale) if device == "cpu" and scale != "smoke" else None
    from cpnas.compilebench import compile_section

    # (g) compiles the cpu-scale networks (minutes): not at smoke scale, which tests/test_compile.py covers
    res["compile"] = compile_section() if device == "cpu" and scale != "smoke" else None
    if res["compile"]:
        _compile_headline(res)
    res["load_avg_end"] = _load_avg()
    res["kernel_forms"] = dispatch.chosen()
    res["dispatch_timings"] = dispatch.timings()
    write_json(out / "bench.json", res)
    write_text(out / "bench.md", markdown(res))
    return res


def _compile_headline(res: dict[str, Any]) -> None:
    """(g)'s ratios at one thread (how every ``cpu`` run trains) as ``throughput.*`` keys of ``bench.json``."""
    r = res["compile"]["runs"][0]
    a = res["throughput"]
    a["compiled_over_eager_train"] = r["compiled_over_eager_train"]
    a["compiled_binary_over_real_step_time"] = r["compiled_binary_over_real_step_time"]
    if "compiled_over_eager_search" in r:
        a["compiled_over_eager_search"] = r["compiled_over_eager_search"]
    a["compile_threads"] = r["threads"]
    a["achieved_gflops"] = {"train": r["train"]["gflops"]}
    if "search" in r:
        a["achieved_gflops"]["search"] = r["search"]["gflops"]
    a["matmul_peak_gflops"] = r["matmul_peak_gflops"]


DATA_PARALLEL_SET = {"cifar.layers": 3, "cifar.channels_small": 8, "cifar.image_size": 16, "cifar.batch_size": 32,
                     "cifar.epochs": 2, "cifar.train_fraction": 1.0, "cifar.test_fraction": 1.0,
                     "data.synthetic_train": 512, "data.synthetic_test": 32}
"""(f)'s training: 16 steps of 32 images per epoch; the second epoch is timed (the first warms up)."""


def data_parallel(work: Path, procs: tuple[int, ...] = (1, 2)) -> dict[str, Any]:
    """(f) Images/s of the second epoch of one ``cpnas train`` in 1 and in N gloo processes (torchrun)."""
    import json
    import subprocess
    import sys

    from cpnas.paths import project_root

    genotype = project_root() / "tests" / "data" / "darts_v2.json"
    sets = [a for k, v in DATA_PARALLEL_SET.items() for a in ("--set", f"{k}={v}")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CPNAS_PROGRESS": "0"}
    out: dict[str, Any] = {"config": DATA_PARALLEL_SET, "runs": {}}
    for n in procs:
        run_dir = work / f"data-parallel-{n}"
        launcher = [sys.executable, "-m", "cpnas"] if n == 1 else [
            sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}", "-m", "cpnas"]
        if run_dir.exists():
            import shutil

            shutil.rmtree(run_dir)
        subprocess.run([*launcher, "-q", "train", "--genotype", str(genotype), "--scale", "smoke", "--dataset",
                        "synthetic", "--device", "cpu", "--loss", "ce", "--out", str(run_dir), *sets],
                       env=env, check=True, capture_output=True)
        history = json.loads((run_dir / HISTORY).read_text())
        images = DATA_PARALLEL_SET["data.synthetic_train"]
        out["runs"][n] = {"seconds": history[-1]["seconds"], "images_per_s": images / history[-1]["seconds"]}
    base = out["runs"][procs[0]]["images_per_s"]
    out["speedup"] = {n: r["images_per_s"] / base for n, r in out["runs"].items()}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m cpnas.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("results/bench"))
    p.add_argument("--scale", default="cpu", help="scale of the search-epoch comparison (default: cpu)")
    p.add_argument("--batch", type=int, default=64, help="batch of the throughput measurement (default: 64)")
    p.add_argument("--images", type=int, default=512, help="images per search epoch in (b) (default: 512)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--data-parallel", default="off", choices=("off", "on", "only"),
                   help="(f) 1 vs 2 gloo processes under torchrun: off (default), on, or only this section")
    p.add_argument("--profile", action="store_true",
                   help="only profile (a)'s step per net at one thread (torch.profiler): writes profile.{json,md}")
    p.add_argument("--compile-only", action="store_true",
                   help="only (g), torch.compile vs eager side by side: writes bench_compile.{json,md}")
    p.add_argument("--threads", default="1,2", help="thread counts of --compile-only (default: 1,2)")
    p.add_argument("--no-search", action="store_true", help="--compile-only without the search step")
    p.add_argument("--equivalence", metavar="SCALE",
                   help="only train 1-bit DARTS_V2 eager and compiled at seeds 0-2 at SCALE and compare top-1: "
                        "writes <out>/equivalence.json")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from cpnas.compilebench import compile_markdown, compile_section, equivalence

    if args.equivalence:
        eq = equivalence(args.out, args.equivalence)
        print(json.dumps({k: v for k, v in eq.items() if k != "runs"}, indent=1))
        return 0
    if args.compile_only:
        res = compile_section(tuple(int(t) for t in args.threads.split(",")), search=not args.no_search)
        res["date"], res["cpu_model"], res["torch"] = time.strftime("%Y-%m-%d %H:%M"), dispatch.cpu_info()["model"], \
            torch.__version__
        write_json(args.out / "bench_compile.json", res)
        write_text(args.out / "bench_compile.md", compile_markdown(res))
        print(compile_markdown(res))
        return 0
    if args.profile:
        prof = operator_times(threads=1, batch=args.batch)
        write_json(args.out / "profile.json", prof)
        write_text(args.out / "profile.md", operator_times_markdown(prof))
        print(operator_times_markdown(prof))
        return 0
    if args.data_parallel == "only":
        res = {"date": time.strftime("%Y-%m-%d %H:%M"), "load_avg_start": _load_avg(),
               "data_parallel": data_parallel(args.out), "load_avg_end": _load_avg()}
        write_json(args.out / "bench_data_parallel.json", res)
        print(json.dumps(res, indent=1))
        return 0
    res = run(args.out, args.scale, args.batch, args.images, args.device)
    if args.data_parallel == "on":
        res["data_parallel"] = data_parallel(args.out)
        write_json(args.out / "bench.json", res)
        write_text(args.out / "bench.md", markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
