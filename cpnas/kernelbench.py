"""``make bench`` (c): the exact CPU rewrites of ours, each timed against the plain PyTorch form.

Side by side in one run, forward + backward: the dilated depthwise convs as space-to-batch
(:mod:`cpnas.fastconv`) and sign + clipped STE (:func:`cpnas.binary.sign`), with the form
the dispatch (:mod:`cpnas.dispatch`) chose for each shape.
"""

from __future__ import annotations

from typing import Any

import torch

from cpnas import dispatch
from cpnas.stepbench import WhereSign
from cpnas.timing import median_time as _time


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
    ref, torch_form, ours = (_time(lambda: run_sign(WhereSign.apply), 20), _time(lambda: run_sign(_SignSTE.apply), 20),
                             _time(lambda: run_sign(sign), 20))
    chosen = [f for key, f in dispatch.chosen().get("sign", {}).items() if key.startswith(f"({tuple(x.shape)}")]
    out["sign_ste"] = {"native_s": ref, "rewrite_s": torch_form, "fast_s": ours, "rewrite_speedup": ref / torch_form,
                       "speedup": ref / ours, "chosen": chosen[-1] if chosen else "torch"}
    return out


def kernels_markdown(k: dict[str, Any]) -> list[str]:
    """(c) as lines of markdown: one row per rewrite."""
    lines = [f"## (c) Exact rewrites vs the plain PyTorch form, forward + backward, input {k['input']}",
             "", "| kernel | plain (ms) | rewrite (ms) | rewrite speed-up | dispatched (ms) | form chosen |",
             "|---|---|---|---|---|---|"]
    for name, label in (("dil_conv_3x3", "dilated depthwise 3×3 (d = 2): space-to-batch"),
                        ("dil_conv_5x5", "dilated depthwise 5×5 (d = 2): space-to-batch"),
                        ("sign_ste", "sign + clipped STE: copysign / hardtanh_backward vs where; "
                                     "dispatched: that or the one-pass C++ form (ext)")):
        r = k[name]
        lines.append(f"| {label} | {1e3 * r['native_s']:.1f} | {1e3 * r['rewrite_s']:.1f} | "
                     f"{r['rewrite_speedup']:.2f}× | {1e3 * r['fast_s']:.1f} | {r['chosen']} |")
    return lines + [""]


def dispatch_markdown(timings: dict[str, dict[str, float]]) -> list[str]:
    """The forms the dispatch measured in a run, as lines of markdown (the fastest is used)."""
    lines = ["### Forms the dispatch measured in this run (median s of each form; the fastest is used)", "",
             "| op | key | timings | chosen |", "|---|---|---|---|"]
    for key, t in timings.items():
        op, _, rest = key.partition("|")
        best = min(t, key=t.get)
        lines.append(f"| {op} | `{rest}` | " + ", ".join(f"{f} {1e3 * v:.1f} ms" for f, v in t.items())
                     + f" | {best} |")
    return lines + [""]
