"""Binarization: sign with a clipped straight-through estimator, and one conv module.

Paper §2.4 binarizes weights *and* activations, following XNOR-Net (Rastegari et
al., 2016) and PCNN (Gu et al., 2019):

* activations: ``x_b = sign(x)`` with ``sign(0) = +1`` so that every value is in
  {-1, +1} (a 0 would be a third level and break the 1-bit claim);
* weights: the reconstructed filter ``Ĥ = α ⊙ sign(H)`` with one scale per output
  channel, ``α_c = mean(|H_c|)`` (the XNOR-Net closed form that minimises
  ``‖H_c − α_c sign(H_c)‖²``);
* gradients: the clipped straight-through estimator of Courbariaux et al. (2016),
  ``∂sign(x)/∂x ≈ 1_{|x| ≤ 1}``.

One module, :class:`BinaryConv2d`, serves both precisions through a
:class:`Precision` value, so the 1-bit Child and the 32-bit Parent of the
Child-Parent model (§2.1) are built from one architecture definition: only the
``precision`` passed to the builders differs.
"""

from __future__ import annotations

import functools
import threading
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from cpnas import dispatch, fastconv, signext


class _SignSTE(torch.autograd.Function):
    """sign(x) in {-1,+1} forward; clipped straight-through gradient backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: D401 - autograd API
        ctx.save_for_backward(x)
        # copysign(1, x + 0) is +1 for x >= 0 and -1 for x < 0: adding +0.0 turns -0.0 into
        # +0.0, so both zeros give +1 (torch.sign would give 0). On the CPU this is one
        # elementwise pass, where torch.where(x >= 0, 1, -1) adds a slow bool-mask pass.
        return torch.copysign(torch.ones((), dtype=x.dtype, device=x.device), x + 0.0)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        # 1{|x| <= 1}·grad in one fused kernel: hardtanh_backward passes the gradient where
        # lo < x < hi, and with hi = -lo = 1 + eps (the next float above 1 in x's dtype)
        # that is exactly |x| <= 1: one fused pass instead of where(|x| <= 1, g, 0)'s mask and select.
        bound = 1.0 + torch.finfo(x.dtype).eps
        return torch.ops.aten.hardtanh_backward(grad_out, x, -bound, bound)


class _TracedSignSTE(_SignSTE):
    """:class:`_SignSTE` as ``torch.compile`` traces it: its forward, and a mask the compiler keeps in floats.

    The backward multiplies the gradient by ``max(sign(b − |x|), 0)`` with ``b`` the next float
    above 1: that is 1 where ``|x| < b``, i.e. ``|x| ≤ 1``, and 0 elsewhere, so the gradient
    equals :class:`_SignSTE`'s (a zero may carry the gradient's sign). Written with a comparison
    instead, the compiler saves the mask between forward and backward as a bool tensor, and
    generated C++ that stores one byte per element ran an order of magnitude slower than the
    float passes around it on the CPUs measured; this mask is computed from the saved ``x``.
    """

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        bound = 1.0 + torch.finfo(x.dtype).eps
        return grad_out * torch.clamp_min(torch.sign(bound - x.abs()), 0.0)


def sign(x: torch.Tensor) -> torch.Tensor:
    """Binarize ``x`` to {-1, +1} (0 → +1) with the clipped STE (§2.4).

    Two exact forms compute it: the torch ops of :class:`_SignSTE` (``torch``) and the
    one-pass C++ extension :mod:`cpnas.signext` (``ext``, CPU float32/float64 only),
    equal bit for bit, forward and backward. :mod:`cpnas.dispatch` (op ``sign``) times
    both once per (shape, dtype, memory format, backward or not, threads) on this
    machine and uses the faster; ``CPNAS_FORMS=sign=torch`` forces the torch form.
    Without a compiler the extension is skipped after one log line.

    Traced by ``torch.compile`` it is the torch form (:class:`_TracedSignSTE`), with no look-up:
    the compiler fuses those ops with their neighbours, which an opaque extension call would prevent.
    """
    if torch.compiler.is_compiling():
        return _TracedSignSTE.apply(x)
    if not signext.supports(x) or signext.unavailable_reason() is not None:
        return _SignSTE.apply(x)
    backward = x.requires_grad and torch.is_grad_enabled()
    key = (tuple(x.shape), tuple(x.stride()), str(x.dtype).removeprefix("torch."), "fwd+bwd" if backward else "fwd")
    if dispatch.choose_fast("sign", key, lambda: _sign_runs(x, backward)) == "ext" and signext.available():
        return signext.sign_ste(x)
    return _SignSTE.apply(x)


def _sign_runs(x: torch.Tensor, backward: bool) -> dict:
    """One zero-argument callable per form of :func:`sign` on a tensor laid out as ``x`` (random values).

    Builds the extension first (once per machine); without it only ``torch`` is returned, and
    :func:`cpnas.dispatch.choose` then neither measures nor caches anything.
    """
    if not signext.available():
        return {"torch": lambda: None}
    g = torch.Generator().manual_seed(0)  # not the global RNG: measuring must not change a run's random stream
    xs = torch.empty_strided(x.shape, x.stride(), dtype=x.dtype).copy_(torch.randn(x.shape, generator=g, dtype=x.dtype))
    grad = torch.empty_strided(x.shape, x.stride(), dtype=x.dtype).copy_(torch.randn(x.shape, generator=g,
                                                                                   dtype=x.dtype))

    def run(fn):
        def go():
            with torch.enable_grad() if backward else torch.no_grad():
                xi = xs.detach().requires_grad_(backward)
                out = fn(xi)
                if backward:
                    out.backward(grad)
        return go

    return {"torch": run(_SignSTE.apply), "ext": run(signext.sign_ste)}


_shared = threading.local()


@contextmanager
def shared_signs():
    """Within this block, ``sign`` of one input tensor is computed once for all the 1-bit convs reading it.

    In a cell a node's output feeds several edges, and a cell's output feeds the
    preprocessing of the next two cells: their 1-bit convs each binarized the same
    tensor. Sharing is exact: the
    same values forward, and backward the convs' gradients are summed before the one
    straight-through mask instead of after it. A tensor changed in place since its sign
    was taken (``_version``) is binarized again. Nested blocks share the outer cache.
    """
    if getattr(_shared, "cache", None) is not None:
        yield
        return
    _shared.cache = {}
    try:
        yield
    finally:
        _shared.cache = None


def shares_signs(forward):
    """Decorator: run a network's ``forward`` inside :func:`shared_signs` (eager; see :func:`activation_sign`)."""
    @functools.wraps(forward)
    def wrapper(*args, **kwargs):
        if torch.compiler.is_compiling():
            return forward(*args, **kwargs)
        with shared_signs():
            return forward(*args, **kwargs)
    return wrapper


def activation_sign(x: torch.Tensor) -> torch.Tensor:
    """:func:`sign` of a conv input, reused within a :func:`shared_signs` block.

    In a graph traced by ``torch.compile`` there is no cache (no ``id()``, no thread-local
    state): every conv takes :func:`sign` of its input, and the compiler computes the
    repeated ``sign`` of one tensor once (common subexpression elimination), the same
    sharing done on the graph.
    """
    if torch.compiler.is_compiling():
        return sign(x)
    cache = getattr(_shared, "cache", None)
    if cache is None or x.is_inference():  # inference tensors carry no version counter: no sharing
        return sign(x)
    hit = cache.get(id(x))
    if hit is not None and hit[0] is x and hit[1] == x._version:
        return hit[2]
    xb = sign(x)
    cache[id(x)] = (x, x._version, xb)  # holding x keeps its id from being reused within the block
    return xb


def signs_shared(x: torch.Tensor) -> bool:
    """Whether :func:`activation_sign` of ``x`` is shared now: inside :func:`shared_signs`, ``x`` not an inference tensor."""
    if torch.compiler.is_compiling():
        return False
    return getattr(_shared, "cache", None) is not None and not x.is_inference()


def mark_signed(xb: torch.Tensor) -> torch.Tensor:
    """Record, within a :func:`shared_signs` block, that ``xb`` holds ±1 only, so that its
    :func:`activation_sign` is ``xb`` itself (no pass). Exact: sign(±1) = ±1, and the STE
    mask 1{|±1| ≤ 1} is all ones, so the gradient is the same with or without the pass.
    Returns ``xb``; outside a block it does nothing.
    """
    if torch.compiler.is_compiling():
        return xb
    cache = getattr(_shared, "cache", None)
    if cache is not None and not xb.is_inference():
        cache[id(xb)] = (xb, xb._version, xb)
    return xb


def scaling_factor(weight: torch.Tensor) -> torch.Tensor:
    """Per-output-channel scale ``α_c = mean |H_c|`` (XNOR-Net), shaped to broadcast."""
    return weight.abs().mean(dim=tuple(range(1, weight.dim())), keepdim=True)


def binarize_weight(weight: torch.Tensor) -> torch.Tensor:
    """Reconstructed 1-bit filter ``Ĥ = α ⊙ sign(H)`` (§2.4, Eq. 3's Ĥ)."""
    return scaling_factor(weight) * sign(weight)


class BinaryConv2d(nn.Conv2d):
    """A convolution with 1-bit weights (``α·sign(W)``) and, optionally, 1-bit inputs.

    ``forward(x) == conv2d(sign(x), α·sign(W))``; the latent real weight ``W`` is
    what the optimizer updates. With ``binarize_input=False`` only the weights are
    binary (used by the Table 2 ``*``/``**`` variants, whose activations of a few
    layers stay real). Counted as binary by :mod:`cpnas.efficiency`.
    """

    dilated_form: str | None = None
    """The dilated-conv form a traced forward uses (:func:`cpnas.accel.bind_forms`); eager looks it up per call."""

    def __init__(self, *args, binarize_input: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.binarize_input = binarize_input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.binarize_input:
            x = activation_sign(x)
        return fastconv.conv2d(x, binarize_weight(self.weight), self.bias, self.stride, self.padding, self.dilation,
                               self.groups, form=self.dilated_form if torch.compiler.is_compiling() else None)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", binarize_input={self.binarize_input}"


class _TracedReLU(torch.autograd.Function):
    """``relu`` as ``torch.compile`` traces it: the gradient passes where the output is positive, through
    the float ``sign(relu(x))`` instead of a compared mask the compiler would keep as bytes
    (see :class:`_TracedSignSTE`)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: D401 - autograd API
        y = torch.relu(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return grad_out * torch.sign(y)


class ReLUConv2d(nn.Conv2d):
    """``conv(relu(x))``: a 32-bit conv with DARTS' ReLU in front (parameter names as ``nn.Conv2d``)."""

    dilated_form: str | None = None
    """As :attr:`BinaryConv2d.dilated_form`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        traced = torch.compiler.is_compiling()
        return fastconv.conv2d((_TracedReLU.apply if traced else torch.relu)(x), self.weight, self.bias, self.stride,
                               self.padding, self.dilation, self.groups, form=self.dilated_form if traced else None)


@dataclass(frozen=True)
class Precision:
    """Which convolutions are 1-bit: the one switch between Child and Parent.

    ``binary=True`` makes every convolution inside the cells a :class:`BinaryConv2d`
    (Child, 1-bit weights and activations); ``binary=False`` makes them plain
    ``nn.Conv2d`` (Parent, 32-bit). The two flags reproduce the variants of
    Table 2: ``*`` keeps the activations of the first layer of each separable
    convolution real, ``**`` also keeps the input-node preprocessing activations
    real. Weights stay 1-bit in both variants.
    """

    binary: bool = True
    sep_first_real_input: bool = False  # Table 2, '*'
    preprocess_real_input: bool = False  # Table 2, '**'
    relu: bool = False  # 32-bit only: DARTS' ReLU before each conv block (the search Parent, search.parent_relu)

    @property
    def name(self) -> str:
        for name, precision in PRECISIONS.items():
            if precision == self:
                return name
        return (f"binary(sep_first_real_input={self.sep_first_real_input}, "
                f"preprocess_real_input={self.preprocess_real_input})")

    def conv(self, c_in: int, c_out: int, kernel_size: int, stride: int = 1, padding: int = 0,
             dilation: int = 1, groups: int = 1, *, real_input: bool = False,
             block_input: bool = False) -> nn.Module:
        """Build a bias-free convolution in this precision (the conv factory).

        ``block_input`` marks the first conv of an op block (DARTS' ``ReLUConvBN``,
        ``DilConv``, ``FactorizedReduce``): with ``relu`` (32-bit only) it applies
        ReLU to its input first, where DARTS has its ReLU.
        """
        if not self.binary:
            if self.relu and block_input:
                return ReLUConv2d(c_in, c_out, kernel_size, stride, padding, dilation, groups, bias=False)
            conv_cls = fastconv.Conv2d if dilation > 1 else nn.Conv2d
            return conv_cls(c_in, c_out, kernel_size, stride, padding, dilation, groups, bias=False)
        return BinaryConv2d(c_in, c_out, kernel_size, stride, padding, dilation, groups, bias=False,
                            binarize_input=not real_input)


BINARY = Precision(binary=True)
REAL = Precision(binary=False)
REAL_RELU = Precision(binary=False, relu=True)
PRECISIONS = {"binary": BINARY, "real": REAL, "real+relu": REAL_RELU,
              "binary*": Precision(True, sep_first_real_input=True),
              "binary**": Precision(True, sep_first_real_input=True, preprocess_real_input=True)}


def get_precision(name: str | Precision) -> Precision:
    """Look up a precision by name (``binary``, ``real``, ``binary*``, ``binary**``)."""
    if isinstance(name, Precision):
        return name
    try:
        return PRECISIONS[name]
    except KeyError:
        from cpnas.errors import CpnasError
        raise CpnasError(f"unknown precision {name!r}; choose one of {sorted(PRECISIONS)}") from None
