"""A packed cell as one call into the extension: no Python per op, scratch memory planned once.

:func:`cell_plan` turns a :class:`~cpnas.networks.Cell` whose ops
:func:`~cpnas.deploy.packed.pack_network` has packed into a program of the
extension's ``CellPlan`` (``csrc/xnor.cpp``): the two preprocessing convs, then every
edge op in the cell's order, each reading one state and writing, or adding to, one
node. The nodes of the concatenation are written in place as channel slices of the
cell's output, so the concatenation is free, and a node's sum is formed in the
epilogue of the op writing its second term: ``states[j] + y``, the order of
:meth:`Cell.forward <cpnas.networks.Cell.forward>`, so the output is bit-identical to
the op-by-op packed cell's. A cell holding an op without such a kernel (a float
depthwise conv, Table 2's ``*``; a ``none`` edge; a node without inputs) gets no plan
and runs op by op.
"""

from __future__ import annotations

import torch
from torch import nn

from cpnas.deploy import kernels
from cpnas.deploy.packed import PackedConv1x1, PackedConvBN, PackedDilConv, PackedFactorizedReduce, PackedPool, \
    PackedSepConv

CONV, CHAIN, POOL, COPY = 0, 1, 2, 3
"""The extension's instruction kinds (``CellPlan`` in ``csrc/xnor.cpp``)."""
INPUTS = (-1, -2)
"""Sources of the preprocessing convs: the cell's inputs s0 and s1."""


class _Program:
    def __init__(self) -> None:
        self.tensors: list[torch.Tensor] = []
        self.ints: list[int] = []
        self.written: set[int] = set()

    def tensor(self, t: torch.Tensor) -> int:
        self.tensors.append(t.contiguous())
        return len(self.tensors) - 1

    def emit(self, kind: int, src: int, dst: int, *args: int) -> None:
        if src >= 0 and src not in self.written:
            raise _NoPlan(f"state {src} is read before it is written")
        self.ints += [kind, src, dst, int(dst in self.written), *args]

    def conv(self, conv: PackedConv1x1, src: int, dst: int, offset: int = 0, channel: int = 0) -> None:
        self.emit(CONV, src, dst, conv.stride, offset, channel, self.tensor(conv.weight_t), self.tensor(conv.scale),
                  self.tensor(conv.bias))

    def reduce(self, m: PackedFactorizedReduce, src: int, dst: int) -> None:
        """Two stride-2 convs, on the input and on the input shifted by one pixel, into the two channel halves."""
        if m.conv_1.stride != 2 or m.conv_2.stride != 2:
            raise _NoPlan("a factorized reduce without stride 2")
        self.conv(m.conv_1, src, dst)
        self.conv(m.conv_2, src, dst, offset=1, channel=m.conv_1.c_out)  # its own channels: both write or both add
        self.written.add(dst)

    def op(self, m: nn.Module, src: int, dst: int) -> None:
        if isinstance(m, (PackedSepConv, PackedDilConv)):
            units = tuple(m) if isinstance(m, PackedSepConv) else (m,)
            if not all(u.binary for u in units):
                raise _NoPlan("a depthwise conv with real inputs")
            stages: list[int] = []
            for u in units:
                d, p = u.depthwise, u.pointwise
                stages += [d.kernel_size, d.stride, d.padding, d.dilation, self.tensor(d.int8_weight),
                           self.tensor(d.alpha), self.tensor(p.weight_t), self.tensor(p.scale), self.tensor(p.bias)]
            self.emit(CHAIN, src, dst, len(units), *stages)
        elif isinstance(m, PackedPool):
            self.emit(POOL, src, dst, int(m.kind == "max"), m.stride)
        elif isinstance(m, nn.Identity):
            self.emit(COPY, src, dst)
        elif isinstance(m, PackedFactorizedReduce):
            self.reduce(m, src, dst)
            return
        else:
            raise _NoPlan(f"no packed kernel for {type(m).__name__}")
        self.written.add(dst)


class _NoPlan(Exception):
    pass


def cell_plan(cell: nn.Module, isa: str | None = None) -> object | None:
    """The extension's ``CellPlan`` of a packed cell, or ``None`` when one of its ops has no packed kernel.

    ``isa``: the plan runs the kernels of that instruction set's build (:func:`cpnas.deploy.kernels.extension`).
    """
    prog = _Program()
    try:
        for pre, src, dst in ((cell.pre0, INPUTS[0], 0), (cell.pre1, INPUTS[1], 1)):
            if isinstance(pre, PackedConvBN):
                prog.conv(pre.conv, src, dst)
                prog.written.add(dst)
            elif isinstance(pre, PackedFactorizedReduce):
                prog.reduce(pre, src, dst)
            else:
                raise _NoPlan(f"preprocessing {type(pre).__name__}")
        for op, (i, j) in zip(cell.ops, cell.edges):
            prog.op(op, i, j)
        if any(j < 2 or j not in prog.written for j in cell.concat):
            raise _NoPlan("a concatenated node without inputs")
    except _NoPlan:
        return None
    return kernels.extension(isa).CellPlan(prog.tensors, prog.ints, 2 + cell.num_nodes, cell.c, list(cell.concat))
