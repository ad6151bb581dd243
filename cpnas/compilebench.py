"""``make bench`` (g): ``torch.compile`` against eager, side by side, and the study that both train alike.

* :func:`compile_section`: at 1 and 2 threads, the ``cpu`` training step (1-bit DARTS_V2) and the
  CP-NAS search step (Child + Parent on one sampled path), each eager and compiled, steps interleaved
  so that a change of load hits both; the 1-bit / 32-bit step ratio with both compiled; achieved
  GFLOP/s (convolution and matmul FLOPs) against the machine's fp32 matmul peak measured in the same
  run (one roofline line). The verdicts become the ``compile`` kernel forms of :mod:`cpnas.dispatch`,
  which ``--compile auto`` reads (:mod:`cpnas.accel`).
* :func:`equivalence`: the 1-bit DARTS_V2 cell trained eager and compiled at three seeds, test top-1
  compared as means and standard deviations (``python -m cpnas.bench --equivalence SCALE``).
"""

from __future__ import annotations

import contextlib
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from cpnas import dispatch
from cpnas.binary import BINARY, REAL, REAL_RELU
from cpnas.config import get_config
from cpnas.io import write_json
from cpnas.networks import SearchNetwork, memory_format_for
from cpnas.space import covering_path as bench_path
from cpnas.timing import load_average as _load_avg, median_time as _time


def matmul_peak(threads: int, n: int = 1024, reps: int = 5) -> float:
    """The machine's fp32 peak as measured here: GFLOP/s of an ``n``×``n`` matmul at ``threads`` threads."""
    from cpnas.deploy.measure import threads as using_threads

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
    with using_threads(threads):
        t = _time(lambda: a @ b, reps=reps, warmup=1)
    return 2 * n ** 3 / t / 1e9


def _step_flops(step) -> int:
    """FLOPs of one training step (forward + backward; convolutions and matmuls, as ``torch.utils.flop_counter``)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def _train_step(forward, net, x, y, opt):
    def step():
        opt.zero_grad(set_to_none=True)
        out = forward(x)
        out = out[0] if isinstance(out, (tuple, list)) else out
        torch.nn.functional.cross_entropy(out, y).backward()
        opt.step()
    return step


def _darts_v2_step(t, spec, x, y, precision, compile_it: bool, contiguous: bool = False):
    """A training step of the ``cpu`` DARTS_V2 network at ``precision`` (its memory format, or contiguous),
    eager or compiled whole: returns the step, the network, the input and the format's name."""
    from cpnas import accel
    from cpnas.genotype import DARTS_V2
    from cpnas.train import recipe_optimizer

    torch.manual_seed(0)
    net = spec.network_class()(DARTS_V2, C=t.channels_small, num_classes=spec.num_classes, layers=t.layers,
                               auxiliary=t.auxiliary_weight > 0, precision=precision)
    fmt = torch.contiguous_format if contiguous else memory_format_for(net, torch.device("cpu"),
                                                                         input_shape=tuple(x.shape))
    net.to(memory_format=fmt).train()
    xi = x.contiguous(memory_format=fmt)
    forward = net
    if compile_it:
        accel.bind_forms(net, xi)
        forward = torch.compile(net, dynamic=False)
    step = _train_step(forward, net, xi, y, recipe_optimizer(net, t))
    return step, net, xi, "channels_last" if fmt == torch.channels_last else "contiguous"


def _timed_first(step) -> float:
    t0 = time.perf_counter()
    step()
    return time.perf_counter() - t0


def _interleaved(steps: dict[str, Any], reps: int, rounds: int = 3,
                 cpu: dict[str, float] | None = None) -> dict[str, float]:
    """Median step seconds of each callable, ``rounds`` rounds of ``reps`` steps each, interleaved.

    ``cpu``, when given, receives the median CPU seconds of this process per step: at one thread
    on a loaded machine that is the step's own work, without the time other processes held the core.
    """
    times: dict[str, list[float]] = {k: [] for k in steps}
    cpu_times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            for _ in range(reps):
                c0 = time.process_time()
                times[name].append(_timed_first(step))
                cpu_times[name].append(time.process_time() - c0)
    if cpu is not None:
        cpu.update({k: statistics.median(v) for k, v in cpu_times.items()})
    return {k: statistics.median(v) for k, v in times.items()}


def compiled_vs_eager(threads: int = 1, reps: int = 3, search: bool = True) -> dict[str, Any]:
    """(g) at ``threads`` threads, each ratio measured side by side (steps interleaved):

    * ``train``: the ``cpu`` training step (1-bit DARTS_V2, its C, cells, batch and optimizer),
      compiled whole (:func:`cpnas.accel.compile_model`) vs eager; and the same net at 32 bits,
      compiled, for the 1-bit / 32-bit step ratio with both compiled;
    * ``search``: the CP-NAS search step at the ``cpu`` scale (Child then Parent, each a training
      step on one sampled path), its parts compiled (:func:`cpnas.accel.compile_ops`) vs eager;
    * achieved GFLOP/s of each step (:func:`_step_flops` / step time) against :func:`matmul_peak`.

    The verdicts are kept as the ``compile`` kernel forms of :mod:`cpnas.dispatch`, which
    ``--compile auto`` reads. Compile seconds are the first step's time less a step's.
    """
    from cpnas import accel
    from cpnas.data import DEFAULT_DATASET, get_dataset, train_config
    from cpnas.deploy.measure import threads as using_threads
    from cpnas.train import recipe_optimizer

    accel.use_cache_dir()
    out: dict[str, Any] = {"threads": threads}
    with using_threads(threads):
        torch._dynamo.reset()  # inductor's kernels are generated for the thread count: compile afresh
        out["matmul_peak_gflops"] = matmul_peak(threads)
        cfg = get_config("cpu")
        t = train_config(cfg, DEFAULT_DATASET)
        spec = get_dataset(DEFAULT_DATASET)
        g = torch.Generator().manual_seed(0)
        x = torch.randn(t.batch_size, 3, 32, 32, generator=g)
        y = torch.randint(0, 10, (t.batch_size,), generator=g)
        steps, flops, first, formats = {}, {}, {}, {}
        # compiled_contiguous: the generated kernels vectorize along the innermost dimension, which is the
        # (few) channels in channels_last and the image width in the contiguous layout; the row shows which wins
        for name, prec, compile_it in (("eager", BINARY, False), ("compiled", BINARY, True),
                                       ("compiled_contiguous", BINARY, True), ("real_compiled", REAL, True)):
            steps[name], net, xi, formats[name] = _darts_v2_step(t, spec, x, y, prec, compile_it,
                                                                 contiguous=name == "compiled_contiguous")
            if not compile_it:
                flops[name] = _step_flops(steps[name])
            first[name] = _timed_first(steps[name])
        flops["compiled"] = flops["compiled_contiguous"] = flops["eager"]
        cpu_s: dict[str, float] = {}
        step_s = _interleaved(steps, reps, cpu=cpu_s)
        real_flops = _step_flops(_train_step(net, net, xi, y, recipe_optimizer(net, t)))
        flops["real_compiled"] = real_flops
        out["train"] = {"memory_format": formats, "C": t.channels_small, "layers": t.layers, "batch": t.batch_size,
                        "optimizer": t.optimizer,
                        "step_s": step_s, "cpu_s": cpu_s,
                        "compile_s": {k: max(0.0, first[k] - step_s[k]) for k in first if k != "eager"},
                        "gflops": {k: flops[k] / step_s[k] / 1e9 for k in step_s},
                        "flops_per_step": {k: flops[k] for k in step_s}}
        out["compiled_over_eager_train"] = step_s["eager"] / step_s["compiled"]
        out["compiled_over_eager_train_cpu"] = cpu_s["eager"] / cpu_s["compiled"]
        out["compiled_binary_over_real_step_time"] = step_s["compiled"] / step_s["real_compiled"]
        dispatch.remember("compile", ("train", "cpu"), {"eager": step_s["eager"], "compiled": step_s["compiled"]})
        accel.remember_costs("train", "cpu", eager_step_s=step_s["eager"], compiled_step_s=step_s["compiled"],
                             compile_s=out["train"]["compile_s"]["compiled"])
        if search:
            out["search"] = _search_compiled_vs_eager(cfg, reps)
            out["compiled_over_eager_search"] = out["search"]["step_s"]["eager"] / out["search"]["step_s"]["compiled"]
            out["compiled_over_eager_search_cpu"] = out["search"]["cpu_s"]["eager"] / out["search"]["cpu_s"]["compiled"]
            dispatch.remember("compile", ("search", "cpu"), dict(out["search"]["step_s"]))
            accel.remember_costs("search", "cpu", eager_step_s=out["search"]["step_s"]["eager"],
                                 compiled_step_s=out["search"]["step_s"]["compiled"],
                                 compile_s=out["search"]["compile_s"]["compiled"])
        from torch._dynamo.utils import counters

        out["graphs"] = counters["stats"]["unique_graphs"]
    return out


def _search_compiled_vs_eager(cfg, reps: int) -> dict[str, Any]:
    """The CP-NAS search step (Child + Parent on one sampled path, each a training step), compiled per op vs eager."""
    from cpnas import accel
    from cpnas.train import recipe_optimizer

    s = cfg.search
    g = torch.Generator().manual_seed(0)
    x = torch.randn(s.batch_size, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (s.batch_size,), generator=g)
    path = bench_path()
    steps, flops, first = {}, {}, {}
    parent_prec = REAL_RELU if s.parent_relu else REAL
    for name, compile_it in (("eager", False), ("compiled", True)):
        pair = []
        for prec in (BINARY, parent_prec):
            torch.manual_seed(0)
            net = SearchNetwork(s.init_channels, 10, s.layers, s.reduction_layers, prec)
            fmt = memory_format_for(net, torch.device("cpu"), input_shape=tuple(x.shape),
                                    forward=lambda m, t: m(t, path))
            net.to(memory_format=fmt).train()
            xi = x.contiguous(memory_format=fmt)
            if compile_it:
                with accel_forced_on():
                    accel.compile_ops(net, xi)  # kernel forms bound on paths running every op
            pair.append(_train_step(lambda t, net=net: net(t, path), net, xi, y, recipe_optimizer(net, s)))

        def step(pair=pair):
            for st in pair:
                st()
        steps[name] = step
        if not compile_it:
            flops[name] = _step_flops(step)
        first[name] = _timed_first(step)
    flops["compiled"] = flops["eager"]
    cpu_s: dict[str, float] = {}
    step_s = _interleaved(steps, reps, cpu=cpu_s)
    from torch._dynamo.utils import counters

    return {"C": s.init_channels, "layers": s.layers, "batch": s.batch_size, "optimizer": s.optimizer,
            "step_s": step_s, "cpu_s": cpu_s,
            "compile_s": {"compiled": max(0.0, first["compiled"] - step_s["compiled"])},
            "gflops": {k: flops[k] / step_s[k] / 1e9 for k in step_s}, "flops_per_step": flops,
            "graphs_total": counters["stats"]["unique_graphs"]}


@contextlib.contextmanager
def accel_forced_on():
    """:mod:`cpnas.accel` set to compile, for a measurement, and restored after."""
    from cpnas import accel

    before = accel.current()
    accel.configure(before.amp, "on", before.device)
    try:
        yield
    finally:
        accel.configure(before.amp, before.compile, before.device)


def compile_markdown(c: dict[str, Any]) -> str:
    """(g) as markdown: one block per thread count."""
    lines = ["## (g) `torch.compile` vs eager, side by side (steps interleaved)", ""]
    for r in c["runs"]:
        tr = r["train"]
        lines += [f"### {r['threads']} thread(s); fp32 matmul peak measured {r['matmul_peak_gflops']:.1f} GFLOP/s", "",
                  "| step | variant | step (s) | GFLOP/s | of peak | compile (s) |", "|---|---|---|---|---|---|"]
        for k, v in tr["step_s"].items():
            gf = tr["gflops"][k]
            lines.append(f"| `cpu` training, {'32' if k.startswith('real') else '1'}-bit DARTS_V2 C={tr['C']}, "
                         f"{tr['layers']} cells, batch {tr['batch']}, {tr['optimizer']}, "
                         f"{tr.get('memory_format', {}).get(k, '?')} | {k} | {v:.3f} | {gf:.2f} | "
                         f"{100 * gf / r['matmul_peak_gflops']:.1f} % | "
                         f"{tr['compile_s'].get(k, 0):.0f} |")
        if "search" in r:
            se = r["search"]
            for k, v in se["step_s"].items():
                gf = se["gflops"][k]
                lines.append(f"| CP-NAS search step (Child + Parent, one path), C={se['C']}, {se['layers']} cells, "
                             f"batch {se['batch']} | {k} per op | {v:.3f} | {gf:.2f} | "
                             f"{100 * gf / r['matmul_peak_gflops']:.1f} % | {se['compile_s'].get(k, 0):.0f} |")
        lines += ["", f"**compiled / eager training speed: {r['compiled_over_eager_train']:.2f}×** (goal ≥ 1.8); "
                      + (f"**search: {r['compiled_over_eager_search']:.2f}×** (goal ≥ 1.5); "
                         if "search" in r else "")
                      + f"**1-bit / 32-bit step time, both compiled: {r['compiled_binary_over_real_step_time']:.2f}** "
                        f"(goal ≤ 1.10). "
                      + (f"In CPU seconds per step (the step's own work under load): training "
                         f"{r['compiled_over_eager_train_cpu']:.2f}×"
                         + (f", search {r['compiled_over_eager_search_cpu']:.2f}×"
                            if "compiled_over_eager_search_cpu" in r else "") + ". "
                         if "compiled_over_eager_train_cpu" in r else "")
                      + f"Roofline: GFLOP/s counts conv and matmul FLOPs "
                        f"(`torch.utils.flop_counter`), against the measured matmul peak.", ""]
    if c.get("limits"):
        lines.append(limits_markdown(c["limits"]))
    lines += [f"Load average at the start / end: {c.get('load_avg_start')} / {c.get('load_avg_end')}.", ""]
    return "\n".join(lines)


# Kernel classes of a profiled step, matched against the profiler's operator names in this order. The
# convolutions (oneDNN, forward and backward) are what a compiler leaves to the library: the rest of the
# step is what fusion can shrink, which bounds the compiled step's speed-up (Amdahl).
KERNEL_CLASSES = (
    ("convolution", ("convolution", "mkldnn_conv", "conv2d")),
    ("matmul", ("addmm", "aten::mm", "aten::bmm", "linear")),
    ("optimizer", ("_foreach", "adam", "sgd", "optimizer")),
    ("compiled region", ("compiled", "inductor", "cpp_fused", "graph")),
)


def kernel_class(op: str) -> str:
    """The class of :data:`KERNEL_CLASSES` a profiler operator name falls in; ``"elementwise and other"`` if none."""
    low = op.lower()
    for name, keys in KERNEL_CLASSES:
        if any(k in low for k in keys):
            return name
    return "elementwise and other"


def step_time_by_class(threads: int = 1, steps: int = 3) -> dict[str, Any]:
    """What limits the compiled ``cpu`` training step: self CPU seconds per step by :func:`kernel_class`,
    eager and compiled, from ``torch.profiler`` (``steps`` steps after warm-up).

    The profiler's per-operator overhead inflates the many small kernels of the eager step, so each
    step is also timed unprofiled (``step_s``, median of ``steps``). ``amdahl_bound`` is the unprofiled
    eager step over its profiled convolution and matmul time: the speed-up if every other kernel cost
    nothing, which no compiler that keeps the same convolutions can exceed.
    """
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from cpnas import accel
    from cpnas.data import DEFAULT_DATASET, get_dataset, train_config
    from cpnas.deploy.measure import threads as using_threads

    accel.use_cache_dir()
    out: dict[str, Any] = {"threads": threads, "steps": steps, "per_step_s": {}, "step_s": {}}
    with using_threads(threads):
        t = train_config(get_config("cpu"), DEFAULT_DATASET)
        spec = get_dataset(DEFAULT_DATASET)
        g = torch.Generator().manual_seed(0)
        x = torch.randn(t.batch_size, 3, 32, 32, generator=g)
        y = torch.randint(0, 10, (t.batch_size,), generator=g)
        for name, compile_it in (("eager", False), ("compiled", True)):
            step = _darts_v2_step(t, spec, x, y, BINARY, compile_it)[0]
            step()
            step()  # compiled: the first call compiles, the second settles the allocator
            out["step_s"][name] = _time(step, reps=steps, warmup=0)
            with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(steps):
                    step()
            by: dict[str, float] = {}
            for e in prof.key_averages():
                by[kernel_class(e.key)] = by.get(kernel_class(e.key), 0.0) + e.self_cpu_time_total / 1e6 / steps
            out["per_step_s"][name] = by
    eager = out["per_step_s"]["eager"]
    library = eager.get("convolution", 0.0) + eager.get("matmul", 0.0)
    out["amdahl_bound"] = out["step_s"]["eager"] / library if library else None
    out["library_share_eager"] = library / sum(eager.values())
    return out


def limits_markdown(lim: dict[str, Any]) -> str:
    """:func:`step_time_by_class` as a table and one line."""
    classes = sorted({k for v in lim["per_step_s"].values() for k in v})
    lines = [f"### What limits the compiled training step ({lim['threads']} thread, `torch.profiler` self CPU "
             f"seconds per step, {lim['steps']} steps)", "",
             "| kernel class | " + " | ".join(lim["per_step_s"]) + " |", "|---|" + "---|" * len(lim["per_step_s"])]
    for c in classes:
        lines.append(f"| {c} | " + " | ".join(f"{v.get(c, 0.0):.3f}" for v in lim["per_step_s"].values()) + " |")
    lines.append("| total, profiled | " + " | ".join(f"{sum(v.values()):.3f}" for v in lim["per_step_s"].values()) + " |")
    lines.append("| step, unprofiled | " + " | ".join(f"{lim['step_s'][k]:.3f}" for k in lim["per_step_s"]) + " |")
    if lim.get("amdahl_bound"):
        lines += ["", f"Convolutions and matmuls take {100 * lim['library_share_eager']:.0f} % of the profiled eager "
                      f"step (the profiler inflates the many small kernels); with everything but them free, the "
                      f"unprofiled step would be at most **{lim['amdahl_bound']:.2f}×** faster.", ""]
    return "\n".join(lines)


def compile_section(threads: tuple[int, ...] = (1, 2), reps: int = 3, search: bool = True) -> dict[str, Any]:
    """(g) at each thread count, with the load average around it."""
    res: dict[str, Any] = {"load_avg_start": _load_avg(), "runs": []}
    for n in threads:
        res["runs"].append(compiled_vs_eager(n, reps=reps, search=search))
    res["limits"] = step_time_by_class(threads=min(threads))
    res["load_avg_end"] = _load_avg()
    return res


# --------------------------------------------------------------------------- compiled and eager: same results


def equivalence(out: Path, scale: str = "cpu", seeds: tuple[int, ...] = (0, 1, 2), loss: str = "ce",
                data_root: str | None = None, device: str = "cpu") -> dict[str, Any]:
    """Train the 1-bit DARTS_V2 cell at ``scale`` at each seed, eager and compiled, and compare test top-1.

    Compiled training changes float summation order, which a 1-bit net turns into sign flips, so the
    two are compared as distributions: mean and standard deviation over ``seeds`` of each, and the
    mean difference with its standard error. Runs are kept in ``out/<eager|compiled>/seed<k>`` and a
    finished one is reused. At the ``cpu`` scale each run is one thread for about the ``cpu`` budget.
    """
    from cpnas import accel
    from cpnas.evaluation import train_genotype
    from cpnas.genotype import DARTS_V2

    cfg = get_config(scale)
    before = accel.current()
    runs: dict[str, list[dict[str, Any]]] = {"eager": [], "compiled": []}
    try:
        for seed in seeds:
            for mode in runs:
                accel.configure(before.amp, "on" if mode == "compiled" else "off", device)
                m = train_genotype(DARTS_V2, cfg, out=out / mode / f"seed{seed}", seed=seed, loss=loss,
                                   device=device, data_root=data_root, resume=True)
                runs[mode].append({"seed": seed, "top1": m["top1"], "wall_clock_s": m["wall_clock_s"],
                                   "acceleration": m.get("acceleration")})
    finally:
        accel.configure(before.amp, before.compile, before.device)
    res: dict[str, Any] = {"scale": scale, "seeds": list(seeds), "loss": loss, "runs": runs}
    for mode, rs in runs.items():
        top1 = [r["top1"] for r in rs]
        res[mode] = {"mean_top1": statistics.mean(top1), "std_top1": statistics.stdev(top1) if len(top1) > 1 else 0.0,
                     "mean_wall_clock_s": statistics.mean(r["wall_clock_s"] for r in rs)}
    diffs = [c["top1"] - e["top1"] for c, e in zip(runs["compiled"], runs["eager"])]
    res["mean_difference"] = statistics.mean(diffs)
    res["difference_se"] = statistics.stdev(diffs) / len(diffs) ** 0.5 if len(diffs) > 1 else None
    write_json(out / "equivalence.json", res)
    return res


def equivalence_markdown(res: dict[str, Any]) -> str:
    """:func:`equivalence`'s result as markdown: each run's top-1, the means ± std, and the paired difference."""
    seeds = res["seeds"]
    lines = [f"1-bit DARTS_V2 trained at the `{res['scale']}` budget (loss `{res['loss']}`), eager and compiled, "
             f"seeds {', '.join(map(str, seeds))}; test top-1 (%) on the full test set.", "",
             "| mode | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± std |",
             "|---|" + "---|" * len(seeds) + "---|"]
    for mode in ("eager", "compiled"):
        top1 = [r["top1"] for r in res["runs"][mode]]
        lines.append(f"| {mode} | " + " | ".join(f"{t:.2f}" for t in top1)
                     + f" | {res[mode]['mean_top1']:.2f} ± {res[mode]['std_top1']:.2f} |")
    se = res.get("difference_se")
    lines += ["", f"Compiled − eager, paired by seed: {res['mean_difference']:+.2f} points"
                  + (f" (standard error {se:.2f}, n = {len(seeds)})" if se is not None else "") + "."]
    return "\n".join(lines)
