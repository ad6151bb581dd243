"""``make bench`` (a) and (d): training steps of the 1-bit and the 32-bit networks, side by side.

(a) Training throughput (images/s) of one sampled path of the paper's search
    network (C = 16, 6 cells, 32×32 inputs), 1-bit Child vs 32-bit Parent, same
    path, same batch, and their step-time ratio (:func:`throughput`); where the
    time of a step goes, per operator (:func:`operator_times`, ``--profile``).
(d) Images/s per thread of a ``cpu``-recipe training step of the 1-bit DARTS_V2
    evaluation network (:func:`training_throughput`).

Timings are medians of repeated steps after warm-up (:mod:`cpnas.timing`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from cpnas import accel
from cpnas.binary import BINARY, REAL, REAL_RELU, Precision
from cpnas.config import get_config
from cpnas.networks import SearchNetwork, memory_format_for
from cpnas.space import SampledPath, covering_path
from cpnas.timing import median_time as _time


def bench_path() -> SampledPath:
    """A fixed path that uses every op in both cells (no 'none'), so both precisions do the same work."""
    return covering_path()


class WhereSign(torch.autograd.Function):
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
        return torch.nn.functional.conv2d(WhereSign.apply(x), alpha * WhereSign.apply(w), None, self.stride,
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
      1-bit step against the bare 32-bit ops, the ratio ``binary_over_real_step_time``;
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


def throughput_markdown(a: dict[str, Any], one_thread: dict[str, Any] | None = None) -> list[str]:
    """(a) as lines of markdown: the four nets, their ratios, and (when measured) the same at one thread."""
    lines = [
        f"## (a) Training step of one sampled path, paper search network (C={a['C']}, {a['layers']} cells, "
        f"32×32, batch {a['batch']}), the four nets interleaved",
        "",
        "| net | memory format | step (s) | images/s |",
        "|---|---|---|---|",
        f"| 1-bit Child (ours) | {a['binary_memory_format']} | {a['binary_step_s']:.3f} | "
        f"{a['binary_img_per_s']:.1f} |",
        f"| 32-bit, no activation function (ours) | {a['real_memory_format']} | {a['real_step_s']:.3f} | "
        f"{a['real_img_per_s']:.1f} |",
        f"| 32-bit Parent as searched ({'ReLU before each conv block' if a['parent_relu'] else 'no ReLU'}, "
        f"`search.parent_relu`) | {a['parent_memory_format']} | {a['parent_step_s']:.3f} | "
        f"{a['parent_img_per_s']:.1f} |",
        f"| 1-bit plain eager (`F.conv2d(sign(x), α·sign(W))`, `where` STE) | {a['naive_binary_memory_format']} | "
        f"{a['naive_binary_step_s']:.3f} | {a['naive_binary_img_per_s']:.1f} |",
        "",
        f"**1-bit / 32-bit step time: {a['binary_over_real_step_time']:.2f}** (goal ≤ 1.10; against the "
        f"32-bit Parent as searched: {a['binary_over_parent_step_time']:.2f}); "
        f"**ours / plain 1-bit speed: {a['speedup_vs_naive']:.2f}×** (goal ≥ 2).",
        "",
    ]
    if one_thread:
        t = one_thread
        lines += [f"At 1 thread (how every `cpu` run trains): 1-bit {t['binary_step_s']:.3f} s, 32-bit without "
                  f"activation {t['real_step_s']:.3f} s, 32-bit Parent {t['parent_step_s']:.3f} s, plain 1-bit "
                  f"{t['naive_binary_step_s']:.3f} s a step; **1-bit / 32-bit: {t['binary_over_real_step_time']:.2f}"
                  f"** (against the Parent: {t['binary_over_parent_step_time']:.2f}), **ours / plain: "
                  f"{t['speedup_vs_naive']:.2f}×**.", ""]
    return lines


def training_markdown(d: dict[str, Any]) -> list[str]:
    """(d) as lines of markdown: one row per width."""
    lines = [f"## (d) `cpu`-recipe training step, 1-bit DARTS_V2 evaluation net ({d['layers']} cells, 32×32, "
             f"batch {d['batch']}, {d['optimizer']}, {d['threads']} thread(s))", "",
             "| C | memory format | step (s) | images/s per thread |", "|---|---|---|---|"]
    for key, r in d.items():
        if key.startswith("C") and isinstance(r, dict):
            lines.append(f"| {key[1:]} | {r['memory_format']} | {r['step_s']:.3f} | {r['img_per_s_per_thread']:.1f} |")
    return lines + [""]
