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

Results go to ``<out>/bench.json`` and ``<out>/bench.md``. Timings are medians of
repeated steps after warm-up; the machine, thread count and torch version are
recorded with them. Run ``python -m cpnas.bench --help`` for the options.
"""

from __future__ import annotations

import argparse
import logging
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from cpnas.binary import BINARY, REAL
from cpnas.config import get_config
from cpnas.io import write_json, write_text
from cpnas.networks import SearchNetwork
from cpnas.ops import PRIMITIVES
from cpnas.space import Path as ArchPath

log = logging.getLogger(__name__)

CIFAR_TRAIN = 50_000


def bench_path() -> ArchPath:
    """A fixed path that uses every op in both cells (no 'none'), so both precisions do the same work."""
    ops = [op for op in PRIMITIVES if op != "none"]
    return ArchPath(tuple(ops[k % len(ops)] for k in range(14)), tuple(ops[(k + 3) % len(ops)] for k in range(14)))


def _median_step(net, path, x, y, steps: int, warmup: int) -> float:
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(x, path), y)
        loss.backward()
        opt.step()
        if x.is_cuda:
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def throughput(batch: int = 64, steps: int = 5, warmup: int = 2, device: str = "cpu",
               channels_last: bool = True) -> dict[str, Any]:
    """(a): img/s of a training step of the paper's search network, 1-bit and 32-bit, same path."""
    s = get_config("paper").search
    dev = torch.device(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, 32, 32, generator=g).to(dev, memory_format=fmt)
    y = torch.randint(0, 10, (batch,), generator=g).to(dev)
    path = bench_path()
    out: dict[str, Any] = {"batch": batch, "channels_last": channels_last, "C": s.init_channels,
                           "layers": s.layers}
    # interleave the two precisions so that load changes on a shared machine hit both
    nets = {}
    for name, prec in (("binary", BINARY), ("real", REAL)):
        torch.manual_seed(0)
        nets[name] = SearchNetwork(s.init_channels, 10, s.layers, s.reduction_layers, prec).to(dev, memory_format=fmt)
    step = {"binary": [], "real": []}
    for _ in range(2):
        for name, net in nets.items():
            step[name].append(_median_step(net, path, x, y, steps, warmup))
    for name in nets:
        t = min(step[name])
        out[f"{name}_step_s"] = t
        out[f"{name}_img_per_s"] = batch / t
    out["binary_over_real_step_time"] = out["binary_step_s"] / out["real_step_s"]
    return out


def search_epochs(scale: str = "cpu", images: int = 512, device: str = "cpu") -> dict[str, Any]:
    """(b): one cpnas epoch vs one pcdarts epoch on the same synthetic images at ``scale``."""
    from cpnas import data as D
    from cpnas.strategies import SearchContext, cpnas_schedule, get_strategy

    cfg = get_config(scale, {"search.pc_batch_size": get_config(scale).search.batch_size})
    s = cfg.search
    dev = torch.device(device)
    pool = D.synthetic_images(2 * images, seed=0)
    train = D.subset(pool, torch.arange(images))
    other = D.subset(pool, torch.arange(images, 2 * images))
    n_score = max(1, round(images * s.score_fraction / s.train_fraction))  # the paper's 5 % : 50 %
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
    paper = get_config("paper").search
    scale_up = paper.train_fraction * CIFAR_TRAIN / images
    results["projected_cpnas_s"] = len(cpnas_schedule(len(PRIMITIVES), paper.T)) * results["cpnas_epoch_s"] * scale_up
    results["projected_pcdarts_s"] = scale_up * (paper.pc_warmup_epochs * results["pcdarts_warmup_epoch_s"]
                                                 + (paper.pc_epochs - paper.pc_warmup_epochs)
                                                 * results["pcdarts_epoch_s"])
    results["cpnas_over_pcdarts_total"] = results["projected_cpnas_s"] / results["projected_pcdarts_s"]
    return results


def _time(fn, reps: int = 10, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def kernels(device: str = "cpu") -> dict[str, Any]:
    """(c): the exact CPU rewrites, each timed against the plain PyTorch form side by side (forward + backward).

    * a dilated depthwise conv (``dil_conv_3x3`` / ``_5x5``) as :func:`cpnas.fastconv.conv2d`
      (space-to-batch) vs ``F.conv2d`` with ``dilation=2``;
    * sign + clipped STE as :func:`cpnas.binary.sign` vs the textbook ``where`` form.
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

        native, fast = _time(lambda: run(F.conv2d)), _time(lambda: run(fastconv.conv2d))
        out[f"dil_conv_{k}x{k}"] = {"native_s": native, "fast_s": fast, "speedup": native / fast}

    class _WhereSign(torch.autograd.Function):  # the textbook form, for reference only
        @staticmethod
        def forward(ctx, t):
            ctx.save_for_backward(t)
            return torch.where(t >= 0, 1.0, -1.0)

        @staticmethod
        def backward(ctx, gout):
            (t,) = ctx.saved_tensors
            return torch.where(t.abs() <= 1, gout, 0.0)

    def run_sign(fn):
        xi = x.detach().requires_grad_()
        fn(xi).backward(grad)

    ref, ours = _time(lambda: run_sign(_WhereSign.apply), 20), _time(lambda: run_sign(sign), 20)
    out["sign_ste"] = {"native_s": ref, "fast_s": ours, "speedup": ref / ours}
    return out


def markdown(res: dict[str, Any]) -> str:
    a, b = res["throughput"], res["search"]
    lines = [
        f"# cpnas benchmark ({res['date']}, {res['machine']}, torch {res['torch']}, {res['threads']} threads)",
        "",
        f"## (a) Training step of one sampled path, paper search network (C={a['C']}, {a['layers']} cells, "
        f"32×32, batch {a['batch']}, channels_last={a['channels_last']})",
        "",
        "| precision | step (s) | images/s |",
        "|---|---|---|",
        f"| 1-bit (Child) | {a['binary_step_s']:.3f} | {a['binary_img_per_s']:.1f} |",
        f"| 32-bit (Parent) | {a['real_step_s']:.3f} | {a['real_img_per_s']:.1f} |",
        "",
        f"**1-bit / 32-bit step time: {a['binary_over_real_step_time']:.2f}** (goal ≤ 1.15)",
        "",
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
        lines += [f"## (c) Exact CPU rewrites vs the plain PyTorch form, forward + backward, input {k['input']}",
                  "", "| kernel | plain (ms) | ours (ms) | speed-up |", "|---|---|---|---|"]
        for name, label in (("dil_conv_3x3", "dilated depthwise 3×3 (d = 2): space-to-batch"),
                            ("dil_conv_5x5", "dilated depthwise 5×5 (d = 2): space-to-batch"),
                            ("sign_ste", "sign + clipped STE: copysign / hardtanh_backward vs where")):
            r = k[name]
            lines.append(f"| {label} | {1e3 * r['native_s']:.1f} | {1e3 * r['fast_s']:.1f} | {r['speedup']:.1f}× |")
        lines.append("")
    return "\n".join(lines)


def run(out: Path, scale: str = "cpu", batch: int = 64, images: int = 512, device: str = "cpu") -> dict[str, Any]:
    res = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{platform.machine()} {platform.processor()}".strip(),
           "device": device, "threads": torch.get_num_threads(), "torch": torch.__version__}
    res["kernels"] = kernels(device=device) if device == "cpu" else None
    res["throughput"] = throughput(batch=batch, device=device)
    res["search"] = search_epochs(scale=scale, images=images, device=device)
    write_json(out / "bench.json", res)
    write_text(out / "bench.md", markdown(res))
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m cpnas.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("results/bench"))
    p.add_argument("--scale", default="cpu", help="scale of the search-epoch comparison (default: cpu)")
    p.add_argument("--batch", type=int, default=64, help="batch of the throughput measurement (default: 64)")
    p.add_argument("--images", type=int, default=512, help="images per search epoch in (b) (default: 512)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    res = run(args.out, args.scale, args.batch, args.images, args.device)
    print(markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
