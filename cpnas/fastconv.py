"""Dilated convolutions computed as undilated ones (space-to-batch), for the CPU.

The dilated depthwise convolutions of ``dil_conv_3x3`` / ``dil_conv_5x5`` are the
slowest kernels of these networks on a CPU: oneDNN has no fast path for a
dilated grouped convolution, and its backward pass is much slower than the undilated
one on the same tensor (``make bench`` prints the ratio). The identity
used here is exact, not an approximation (Yu & Koltun, 2016, "Multi-scale context
aggregation by dilated convolutions", §2; the "space-to-batch" trick of
TensorFlow's ``atrous_conv2d``):

* **stride 1, dilation d** — output pixel (i, j) only reads input pixels with the
  same (i mod d, j mod d) phase. Splitting the zero-padded input into its d×d
  phases, stacking them along the batch, convolving *without* dilation and
  interleaving the results back gives the dilated convolution.
* **stride d, dilation d** — every output pixel reads only phase (0, 0) of the
  padded input, so one undilated convolution of that phase does it.

The same MACs are computed as by the native kernel (tested against
``torch.utils.flop_counter``), and the values and gradients equal the native
ones up to float summation order (tested). Other shapes (odd sizes, other
strides), other devices (cuDNN handles dilation well) and ``meta`` tensors use
``torch.nn.functional.conv2d`` unchanged.

Whether the rewrite is faster depends on the CPU (faster on one, slower on
another), so :func:`conv2d` does not decide it: :mod:`cpnas.dispatch`
times both forms once per shape on this machine and uses the faster
(``CPNAS_FORMS=dilated_conv=plain|space_to_batch`` forces one).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def rewritable(x: torch.Tensor, weight: torch.Tensor, stride=1, padding=0, dilation=1) -> bool:
    """Whether :func:`space_to_batch_conv2d` applies: a dilated CPU conv of "same" padding, stride 1 or d."""
    sh, sw = _pair(stride)
    dh, dw = _pair(dilation)
    ph, pw = _pair(padding)
    return not (x.device.type != "cpu" or x.dim() != 4 or dh != dw or dh == 1 or sh != sw or sh not in (1, dh)
                or x.shape[-2] % dh or x.shape[-1] % dh
                or 2 * ph != dh * (weight.shape[-2] - 1) or 2 * pw != dw * (weight.shape[-1] - 1))


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, stride=1, padding=0,
           dilation=1, groups: int = 1, form: str | None = None) -> torch.Tensor:
    """``F.conv2d``, with a dilated CPU convolution in the form measured fastest here (plain or space-to-batch).

    ``form`` (``plain`` or ``space_to_batch``) skips the look-up: a network traced by ``torch.compile``
    passes the form chosen when it was prepared (:func:`cpnas.accel.bind_forms`); traced without one,
    the plain form is used (a graph cannot consult the dispatch on every call).
    """
    if not rewritable(x, weight, stride, padding, dilation):
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)
    if form is None:
        form = "plain" if torch.compiler.is_compiling() else choose_form(x, weight, stride, padding, dilation, groups)
    if form == "space_to_batch":
        return space_to_batch_conv2d(x, weight, bias, stride, padding, dilation, groups)
    return F.conv2d(x, weight, bias, stride, padding, dilation, groups)


def choose_form(x: torch.Tensor, weight: torch.Tensor, stride=1, padding=0, dilation=1, groups: int = 1) -> str | None:
    """The form :mod:`cpnas.dispatch` picks for this convolution (measured once per key), ``None`` where no
    rewrite applies (:func:`rewritable`)."""
    if not rewritable(x, weight, stride, padding, dilation):
        return None
    backward = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
    fmt = "channels_last" if x.is_contiguous(memory_format=torch.channels_last) and x.shape[1] > 1 else "contiguous"
    key = (tuple(x.shape), tuple(weight.shape), _pair(stride), _pair(dilation), groups, str(x.dtype), fmt,
           "fwd+bwd" if backward else "fwd")

    def runs():
        g = torch.Generator().manual_seed(0)
        xs = torch.randn(x.shape, generator=g, dtype=x.dtype).to(
            memory_format=torch.channels_last if fmt == "channels_last" else torch.contiguous_format)
        ws = torch.randn(weight.shape, generator=g, dtype=weight.dtype)

        def run(fn):
            def go():
                with torch.enable_grad() if backward else torch.no_grad():
                    xi, wi = xs.detach().requires_grad_(backward), ws.detach().requires_grad_(backward)
                    out = fn(xi, wi, None, stride, padding, dilation, groups)
                    if backward:
                        out.sum().backward()
            return go

        return {"plain": run(F.conv2d), "space_to_batch": run(space_to_batch_conv2d)}

    from cpnas import dispatch

    return dispatch.choose("dilated_conv", key, runs)


def space_to_batch_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, stride=1,
                          padding=0, dilation=1, groups: int = 1) -> torch.Tensor:
    """The dilated convolution as undilated ones on the input's phases (exact; see the module doc).

    Only for arguments where :func:`rewritable` holds.
    """
    sh, _ = _pair(stride)
    d, _ = _pair(dilation)
    ph, pw = _pair(padding)
    xp = F.pad(x, (pw, pw, ph, ph))
    if sh == d:
        # every output pixel reads phase (0, 0) of the padded input only
        return F.conv2d(xp[:, :, ::d, ::d], weight, bias, 1, 0, 1, groups)
    n, c, h, w = x.shape
    hp, wp = h + 2 * ph, w + 2 * pw
    # (N, C, Hp, Wp) → (d·d·N, C, Hp/d, Wp/d), going through NHWC so a channels_last input moves as whole pixels
    z = (xp.permute(0, 2, 3, 1).reshape(n, hp // d, d, wp // d, d, c)
         .permute(2, 4, 0, 1, 3, 5).reshape(d * d * n, hp // d, wp // d, c).permute(0, 3, 1, 2))
    o = F.conv2d(z, weight, bias, 1, 0, 1, groups)  # (d·d·N, C_out, H/d, W/d)
    c_out = o.shape[1]
    o = (o.permute(0, 2, 3, 1).reshape(d, d, n, h // d, w // d, c_out)
         .permute(2, 3, 0, 4, 1, 5).reshape(n, h, w, c_out).permute(0, 3, 1, 2))
    return o


class Conv2d(nn.Conv2d):
    """A real ``nn.Conv2d`` whose forward goes through :func:`conv2d` (the Parent's dilated convs).

    ``dilated_form`` is the form a traced forward uses (set by :func:`cpnas.accel.bind_forms`);
    eager calls look it up per input shape instead.
    """

    dilated_form: str | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding_mode != "zeros" or isinstance(self.padding, str):
            return super().forward(x)
        return conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups,
                      form=self.dilated_form if torch.compiler.is_compiling() else None)
