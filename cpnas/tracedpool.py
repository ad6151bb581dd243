"""Max pooling as ``torch.compile`` traces it on a CPU: ATen's kernels, opaque to the compiler.

Inductor decomposes ``max_pool2d`` into generated loops that keep the argmax as one int8
offset per output element and rebuild the gradient by gathering over windows. On the CPU
measured, in the ``channels_last`` layout, that took about twice the CPU time of ATen's own
pooling kernels (in the contiguous layout the generated loops were the faster), and a pooling
layer has little to fuse with. So a traced ``channels_last`` network calls :func:`max_pool2d`:
two custom operators (``torch.library``) over ATen's ``max_pool2d_with_indices`` and its
backward: the same values and gradients as :func:`torch.nn.functional.max_pool2d` (the gradient
goes to the first maximum of a window).
"""

from __future__ import annotations

import torch

_ARGS = "Tensor x, int kernel, int stride, int padding"


def _pool(x: torch.Tensor, kernel: int, stride: int, padding: int):
    return torch.ops.aten.max_pool2d_with_indices.default(x, [kernel] * 2, [stride] * 2, [padding] * 2)


@torch.library.custom_op("cpnas::max_pool2d_with_indices", mutates_args=())
def _forward(x: torch.Tensor, kernel: int, stride: int, padding: int) -> tuple[torch.Tensor, torch.Tensor]:
    out, indices = _pool(x, kernel, stride, padding)
    return out, indices


@_forward.register_fake
def _forward_fake(x, kernel, stride, padding):
    return _pool(x, kernel, stride, padding)


@torch.library.custom_op("cpnas::max_pool2d_backward", mutates_args=())
def _backward_op(grad: torch.Tensor, x: torch.Tensor, indices: torch.Tensor, kernel: int, stride: int,
                 padding: int) -> torch.Tensor:
    return torch.ops.aten.max_pool2d_with_indices_backward.default(
        grad, x, [kernel] * 2, [stride] * 2, [padding] * 2, [1, 1], False, indices)


@_backward_op.register_fake
def _backward_fake(grad, x, indices, kernel, stride, padding):
    return torch.empty_like(x)


def _setup(ctx, inputs, output) -> None:
    x, kernel, stride, padding = inputs
    ctx.save_for_backward(x, output[1])
    ctx.args = (kernel, stride, padding)


def _grad(ctx, grad_out, _grad_indices):
    x, indices = ctx.saved_tensors
    return _backward_op(grad_out.contiguous(memory_format=_format(x)), x, indices, *ctx.args), None, None, None


def _format(x: torch.Tensor) -> torch.memory_format:
    cl = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return torch.channels_last if cl else torch.contiguous_format


_forward.register_autograd(_grad, setup_context=_setup)


def max_pool2d(x: torch.Tensor, kernel: int, stride: int, padding: int) -> torch.Tensor:
    """``F.max_pool2d(x, kernel, stride, padding)`` (square window, no dilation, floor mode) through ATen's kernels."""
    return _forward(x, kernel, stride, padding)[0]
