"""The packed network: every op block of an evaluation network replaced by its packed form, and its file.

:func:`pack_network` turns an evaluation network (:class:`~cpnas.networks.NetworkCIFAR`
or :class:`~cpnas.networks.NetworkImageNet`, eval mode) into a :class:`PackedNetwork`
that computes the same logits, with the packed modules of :mod:`cpnas.deploy.packed`;
each of its cells then runs as one extension call where it can
(:mod:`cpnas.deploy.cellplan`). :func:`to_bytes` / :func:`load_packed` write and read
the one-file model (:mod:`cpnas.deploy.modelfile`).
"""

from __future__ import annotations

import copy
import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import nn

from cpnas.binary import BinaryConv2d
from cpnas.deploy.packed import (PackedConv1x1, PackedConvBN, PackedDepthwise, PackedDilConv, PackedFactorizedReduce,
                                 PackedPool, PackedSepConv, _binary_1x1, _bn_affine)
from cpnas.ops import ConvBN, DilConv, FactorizedReduce, Pool, SepConv

log = logging.getLogger(__name__)

def _pack_module(m: nn.Module) -> nn.Module | None:
    """The packed replacement of one op block, or ``None`` to keep it as it is."""
    if isinstance(m, Pool):
        return PackedPool.of(m)
    if isinstance(m, ConvBN) and _binary_1x1(m[0]):
        return PackedConvBN(PackedConv1x1.fold(m[0], *_bn_affine(m[1])))
    if isinstance(m, SepConv):
        units = [_pack_module(half) for half in m]
        if all(isinstance(u, PackedDilConv) for u in units):
            return PackedSepConv(*units)
    if isinstance(m, DilConv) and _binary_1x1(m[1]) and isinstance(m[0], BinaryConv2d):
        return PackedDilConv(PackedDepthwise.from_binary(m[0]), PackedConv1x1.fold(m[1], *_bn_affine(m[2])))
    if isinstance(m, FactorizedReduce) and _binary_1x1(m.conv_1) and _binary_1x1(m.conv_2):
        scale, shift = _bn_affine(m.bn)
        half = m.conv_1.out_channels
        return PackedFactorizedReduce(PackedConv1x1.fold(m.conv_1, scale[:half], shift[:half]),
                                      PackedConv1x1.fold(m.conv_2, scale[half:], shift[half:]))
    return None


def _replace(parent: nn.Module) -> None:
    for name, child in list(parent.named_children()):
        packed = _pack_module(child)
        if packed is not None:
            setattr(parent, name, packed)
        else:
            _replace(child)


@dataclass(frozen=True)
class PackedMeta:
    """What rebuilds the network's structure: architecture and sizes (stored beside the packed weights)."""

    genotype: dict
    dataset: str
    channels: int
    layers: int
    num_classes: int
    reductions: tuple[int, ...] | None = None


def _cl(x: torch.Tensor) -> torch.Tensor:
    return x if x.dtype == torch.float32 and x.is_contiguous(memory_format=torch.channels_last) else \
        x.float().contiguous(memory_format=torch.channels_last)


class PackedNetwork(nn.Module):
    """A packed evaluation network: ``forward(x) -> logits`` (no auxiliary tower), inference only."""

    use_plans: bool = True
    """Run each cell as one extension call (:mod:`cpnas.deploy.cellplan`); ``False``: op by op, as PyTorch modules."""
    isa: str | None = None
    """The instruction set whose build of the extension the planned cells run (``None``: the default build)."""
    clock: dict[str, float] | None = None
    """When a dict, planned forwards add their seconds in the ``stem``, the ``cells`` and the ``head`` to it."""

    def __init__(self, body: nn.Module, meta: PackedMeta | None = None) -> None:
        super().__init__()
        self.body = body
        self.meta = meta
        self._plans: list | None = None  # per cell: its CellPlan or None; built at the first forward
        self._tracing = False  # trace_integers runs op by op
        body.register_load_state_dict_post_hook(lambda module, keys: self._drop_plans())

    def _drop_plans(self) -> None:
        self._plans = None  # the plans hold the kernel-layout tensors, which loading replaces

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        body = self.body
        if not self.use_plans or self._tracing or not hasattr(body, "cells"):
            out = body(x)
            return out[0] if isinstance(out, tuple) else out
        if self._plans is None:
            from cpnas.deploy.cellplan import cell_plan

            self._plans = [cell_plan(cell) for cell in body.cells]
        clock = self.clock
        t0 = time.perf_counter() if clock is not None else 0.0
        if hasattr(body, "stem"):
            s0 = s1 = body.stem(x)
        else:
            s0 = body.stem0(x)
            s1 = body.stem1(s0)
        if clock is not None:
            t1 = time.perf_counter()
        for cell, plan in zip(body.cells, self._plans):
            s0, s1 = s1, (plan.forward(_cl(s0), _cl(s1)) if plan is not None else cell(s0, s1))
        if clock is not None:
            t2 = time.perf_counter()
        logits = body.classifier(torch.flatten(body.global_pooling(s1), 1))
        if clock is not None:
            for name, dt in (("stem", t1 - t0), ("cells", t2 - t1), ("head", time.perf_counter() - t2)):
                clock[name] = clock.get(name, 0.0) + dt
        return logits

    def planned_cells(self) -> int:
        """How many cells run as one extension call (builds the plans)."""
        from cpnas.deploy.cellplan import cell_plan

        if self._plans is None:
            self._plans = [cell_plan(cell, self.isa) for cell in self.body.cells]
        return sum(p is not None for p in self._plans)

    def counts(self) -> dict[str, int]:
        """How many convs of each kind the packed form runs."""
        mods = list(self.modules())
        return {"xnor_1x1": sum(isinstance(m, PackedConv1x1) for m in mods),
                "int8_depthwise": sum(isinstance(m, PackedDepthwise) and m.binarize_input for m in mods),
                "float_depthwise": sum(isinstance(m, PackedDepthwise) and not m.binarize_input for m in mods),
                "binary_kept_float": sum(isinstance(m, BinaryConv2d) for m in mods)}

    @contextmanager
    def trace_integers(self) -> Iterator[list[torch.Tensor]]:
        """Collect the integer dot products of every XNOR 1×1 conv, in execution order."""
        found: list[torch.Tensor] = []
        convs = [m for m in self.modules() if isinstance(m, PackedConv1x1)]
        for m in convs:
            m.trace = found
        self._tracing = True
        try:
            yield found
        finally:
            self._tracing = False
            for m in convs:
                m.trace = None


def pack_network(model: nn.Module, meta: PackedMeta | None = None) -> PackedNetwork:
    """The packed inference form of an evaluation network (left unchanged); see the module docstring.

    Needs the C++ extension at the first forward call, not here.
    """
    body = copy.deepcopy(model).eval()
    if hasattr(body, "auxiliary"):
        body.auxiliary = None  # a training-only tower
    _replace(body)
    left = [name for name, m in body.named_modules() if isinstance(m, BinaryConv2d)]
    if left:
        log.info("%d binary convs keep their float form (real inputs or shapes without a packed kernel): %s",
                 len(left), ", ".join(left[:5]) + (" …" if len(left) > 5 else ""))
    body = body.to(memory_format=torch.channels_last)
    return PackedNetwork(body, meta)


def to_bytes(packed: PackedNetwork) -> bytes:
    """The packed model file (:mod:`cpnas.deploy.modelfile`): its persistent buffers, real parameters and meta."""
    from cpnas.deploy import modelfile

    meta = None if packed.meta is None else {**packed.meta.__dict__, "reductions": packed.meta.reductions}
    return modelfile.encode(meta, packed.body.state_dict())


def payload_bits(packed: PackedNetwork) -> dict[str, int]:
    """Bits of what the file stores, by kind: packed sign words, and 32-bit reals (BN statistics excluded)."""
    bits = {"sign_words": 0, "real": 0, "bn_running_stats": 0}
    for name, t in packed.body.state_dict().items():
        if name.endswith("weight_bits"):
            bits["sign_words"] += t.numel() * 64
        elif name.endswith(("running_mean", "running_var", "num_batches_tracked")):
            bits["bn_running_stats"] += t.numel() * t.element_size() * 8
        else:
            bits["real"] += t.numel() * t.element_size() * 8
    return bits


def build_network(meta: PackedMeta) -> nn.Module:
    """The 1-bit evaluation network (random weights) whose structure ``meta`` describes."""
    from cpnas.binary import BINARY
    from cpnas.genotype import Genotype
    from cpnas.networks import NetworkCIFAR, NetworkImageNet

    net_cls = NetworkImageNet if meta.dataset == "imagenet" else NetworkCIFAR
    return net_cls(Genotype.from_dict(meta.genotype), C=meta.channels, num_classes=meta.num_classes,
                   layers=meta.layers, auxiliary=False, precision=BINARY)


def load_packed(data: bytes | str | os.PathLike, build: Callable[[PackedMeta], nn.Module] | None = None,
                source: str | None = None) -> PackedNetwork:
    """Rebuild a packed network from :func:`to_bytes` (bytes or a path); ``build(meta)`` gives the structure.

    A bad, truncated or mismatched file is one :class:`~cpnas.errors.CpnasError` line.
    """
    from cpnas.deploy import modelfile
    from cpnas.errors import CpnasError

    if isinstance(data, bytes):
        source = source or "the packed model file"
        meta_dict, state = modelfile.decode(data, source)
    else:
        source = source or str(data)
        meta_dict, state = modelfile.read(data)
    try:
        meta = PackedMeta(**{**meta_dict, "reductions": (None if meta_dict.get("reductions") is None
                                                          else tuple(meta_dict["reductions"]))})
        packed = pack_network((build or build_network)(meta).eval(), meta)
        packed.body.load_state_dict(state)
    except (TypeError, ValueError, KeyError, RuntimeError) as exc:
        raise CpnasError(f"{source}: the packed model does not rebuild ({str(exc).splitlines()[0][:300]})") from None
    return packed
