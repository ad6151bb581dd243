"""Networks built from one cell definition in either precision (§2.2, §3.1).

* :class:`SearchNetwork` — the weight-sharing supernet of the search (6 cells,
  C = 16, reductions at the "second and fourth layers" ⚑), run on a sampled
  :class:`~cpnas.space.SampledPath` (Child: ``BINARY``, Parent: ``REAL``); PC-DARTS
  extends it with its mixed-op forward (:mod:`cpnas.pcdarts`).
* :class:`NetworkCIFAR` — the evaluation network: 10 cells (8 normal, 2 reduction
  at 1/3 and 2/3 of the depth, as DARTS), C = 56/72/112, auxiliary tower.
* :class:`NetworkImageNet` — three stride-2 3×3 stem convs (224 → 28), 10 cells,
  C = 102, auxiliary tower (DARTS' ImageNet network, §3.1).

⚑ Which layers stay full precision: the stem convolutions, the classifier and the
auxiliary tower are real; every convolution inside the cells (ops and input-node
preprocessing) follows ``precision``. Channels and the number of cells are
arguments, so every scale builds from the same code.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any, Callable, Sequence

import torch
from torch import nn

from cpnas.binary import BINARY, Precision, shares_signs
from cpnas.genotype import NUM_INPUTS, Genotype
from cpnas.ops import build_op
from cpnas.space import SampledPath, SearchCell, preprocess

STEM_MULTIPLIER = 3  # DARTS: the CIFAR stem outputs 3·C channels

ONEDNN_MIN_STRIDED_1X1_CHANNELS = 8
"""Work-around for a PyTorch CPU bug (seen with torch 2.14.1, oneDNN 3.12): the weight
gradient of a stride-2 1×1 convolution on a ``channels_last`` input with fewer than 8
input channels corrupts the heap (glibc aborts the process). Such convolutions appear
only at tiny widths (the factorized reduce of a ``smoke``-scale cell, or of a PC-DARTS
reduction cell whose ops see 2·C/4 channels)."""


def memory_format_for(model: nn.Module, device: torch.device, *, input_shape: Sequence[int] | None = None,
                      forward: Callable[[nn.Module, torch.Tensor], Any] | None = None) -> torch.memory_format:
    """The memory format to train ``model`` in: ``channels_last`` or contiguous, chosen by measurement.

    * On a CPU where the oneDNN bug above would be hit: contiguous, always.
    * On another device: ``channels_last``.
    * On a CPU otherwise, :mod:`cpnas.dispatch` decides (op ``memory_format``): with
      ``input_shape`` given, a forward + backward of a copy of ``model`` (through
      ``forward(net, x)``, default ``net(x)``) is timed in both formats on random
      inputs, once per (layer shapes, input shape, threads) on this machine, and the
      faster is cached: which format wins depends on the machine. The timing runs under
      :func:`torch.random.fork_rng` on a deep copy, so the run's RNG stream and the
      model are left as they were.
    """
    if device.type != "cpu":
        return torch.channels_last
    for m in model.modules():
        if (isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.stride != (1, 1)
                and m.in_channels < ONEDNN_MIN_STRIDED_1X1_CHANNELS):
            return torch.contiguous_format
    from cpnas import dispatch

    params = [(name, tuple(p.shape)) for name, p in model.named_parameters()]
    signature = hashlib.sha1(f"{type(model).__name__}|{params}".encode()).hexdigest()[:12]
    key = (type(model).__name__, signature, tuple(input_shape) if input_shape else None)
    runs = None
    if input_shape is not None and not any(p.is_meta for p in model.parameters()):
        def runs():
            forms = {}
            for name, fmt in (("channels_last", torch.channels_last), ("contiguous", torch.contiguous_format)):
                forms[name] = _timed_step(model, input_shape, fmt, forward)
            return forms
    form = dispatch.choose("memory_format", key, runs)
    # data-parallel ranks must agree (DDP checks that every rank's parameters have the same strides)
    from cpnas import distributed

    form = distributed.broadcast_object(form)
    return torch.channels_last if form == "channels_last" else torch.contiguous_format


def loader_input_shape(loader: Any) -> tuple[int, ...] | None:
    """The shape of a full batch of a :class:`~cpnas.data.TensorLoader` (``None`` for other loaders)."""
    images = getattr(loader, "images", None)
    batch = getattr(loader, "batch_size", None)
    if images is None or not isinstance(batch, int):
        return None
    return (min(batch, images.shape[0]), *images.shape[1:])


def _timed_step(model: nn.Module, input_shape: Sequence[int], fmt: torch.memory_format,
                forward: Callable[[nn.Module, torch.Tensor], Any] | None) -> Callable[[], None]:
    """One forward + backward of a copy of ``model`` in ``fmt``, leaving the global RNG untouched."""
    net = copy.deepcopy(model).to(memory_format=fmt).train()
    x = torch.randn(tuple(input_shape), generator=torch.Generator().manual_seed(0)).contiguous(memory_format=fmt)

    def step() -> None:
        with torch.random.fork_rng(devices=[]), torch.enable_grad():
            out = forward(net, x) if forward is not None else net(x)
            out = out[0] if isinstance(out, (tuple, list)) else out
            out.float().square().mean().backward()
        net.zero_grad(set_to_none=True)

    return step


def default_reductions(layers: int) -> tuple[int, ...]:
    """DARTS places the 2 reduction cells at 1/3 and 2/3 of the depth (cells 3 and 6 of 10)."""
    return (layers // 3, 2 * layers // 3)


def drop_path(x: torch.Tensor, drop_prob: float, training: bool) -> torch.Tensor:
    """Drop a whole op output per sample with probability ``drop_prob`` (DARTS' drop-path)."""
    if not training or drop_prob <= 0.0:
        return x
    keep = 1.0 - drop_prob
    mask = torch.empty(x.size(0), 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x * mask / keep


def _cell_channels(c_stem: int, c: int, layers: int, reductions: Sequence[int], nodes: int):
    """Yield ``(c_prev_prev, c_prev, c_cell, reduction, reduction_prev)`` for every cell (DARTS)."""
    c_pp, c_p, c_curr = c_stem, c_stem, c
    reduction_prev = False
    for i in range(layers):
        reduction = i in reductions
        if reduction:
            c_curr *= 2
        yield c_pp, c_p, c_curr, reduction, reduction_prev
        reduction_prev = reduction
        c_pp, c_p = c_p, nodes * c_curr


def _check_reductions(layers: int, reductions: Sequence[int]) -> None:
    bad = [r for r in reductions if not 0 <= r < layers]
    if bad:
        raise ValueError(f"reduction cell positions {bad} are outside 0..{layers - 1}")


class SearchNetwork(nn.Module):
    """The supernet of the search stage: stem → cells → global pool → classifier.

    ``forward(x, path)`` runs one sampled sub-network. ``cell`` builds every cell
    (default :class:`~cpnas.space.SearchCell`; a relaxation such as PC-DARTS passes its
    own subclass and adds its own forward, :mod:`cpnas.pcdarts`).
    """

    def __init__(self, C: int = 16, num_classes: int = 10, layers: int = 6,
                 reduction_layers: Sequence[int] = (1, 3), precision: Precision = BINARY,
                 nodes: int = 4, in_channels: int = 3, cell: Callable[..., SearchCell] = SearchCell) -> None:
        super().__init__()
        _check_reductions(layers, reduction_layers)
        self.nodes = nodes
        self.precision = precision
        self.reduction_layers = tuple(reduction_layers)
        c_stem = STEM_MULTIPLIER * C
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c_stem))
        self.cells = nn.ModuleList(
            cell(nodes, c_pp, c_p, c, red, red_prev, precision)
            for c_pp, c_p, c, red, red_prev in _cell_channels(c_stem, C, layers, reduction_layers, nodes))
        c_out = nodes * self.cells[-1].c
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_out, num_classes)

    @shares_signs
    def forward(self, x: torch.Tensor, path: SampledPath) -> torch.Tensor:
        if self.cells[0].op_channels != self.cells[0].c:
            raise RuntimeError("a SearchNetwork whose ops see part of the channels has no sampled-path forward")
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, path.reduce if cell.reduction else path.normal)
        return self.classifier(torch.flatten(self.global_pooling(s1), 1))


class Cell(nn.Module):
    """An evaluation cell built from a genotype: node j = Σ over its edges (§2.2)."""

    def __init__(self, genotype: Genotype, c_prev_prev: int, c_prev: int, c: int, reduction: bool,
                 reduction_prev: bool, precision: Precision) -> None:
        super().__init__()
        self.reduction = reduction
        edges, concat = genotype.cell("reduce" if reduction else "normal")
        self.pre0, self.pre1 = preprocess(c_prev_prev, c_prev, c, reduction_prev, precision, affine=True)
        self.edges = tuple((i, j) for _, i, j in edges)
        self.identity = tuple(op == "skip_connect" and not (reduction and i < NUM_INPUTS) for op, i, _ in edges)
        self.ops = nn.ModuleList(
            build_op(op, c, 2 if reduction and i < NUM_INPUTS else 1, precision, affine=True)
            for op, i, _ in edges)
        self.concat = tuple(concat)
        self.num_nodes = max([j for _, j in self.edges] + list(self.concat)) - NUM_INPUTS + 1
        self.multiplier = len(self.concat)
        self.c = c

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        states: list[torch.Tensor | None] = [self.pre0(s0), self.pre1(s1)] + [None] * self.num_nodes
        for op, (i, j), is_identity in zip(self.ops, self.edges, self.identity):
            src = states[i]
            if src is None:  # a node without incoming edges outputs zeros (see _node)
                continue
            y = op(src)
            if not is_identity:
                y = drop_path(y, drop_prob, self.training)
            states[j] = y if states[j] is None else states[j] + y
        return torch.cat([self._node(states, j) for j in self.concat], dim=1)

    def _node(self, states: list, j: int) -> torch.Tensor:
        if states[j] is not None:
            return states[j]
        ref = states[1]
        stride = 2 if self.reduction else 1
        return ref.new_zeros(ref.shape[0], ref.shape[1], -(-ref.shape[2] // stride), -(-ref.shape[3] // stride))


class AuxiliaryHead(nn.Module):
    """DARTS' auxiliary tower (real precision; used in training only, not counted at inference)."""

    def __init__(self, c: int, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.AdaptiveAvgPool2d(2),
            nn.Conv2d(c, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False), nn.BatchNorm2d(768), nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


class _EvalNetwork(nn.Module):
    """Shared body of the CIFAR and ImageNet evaluation networks."""

    def _build_cells(self, genotype: Genotype, c_stem: int, C: int, layers: int,
                     reductions: Sequence[int], precision: Precision, num_classes: int,
                     auxiliary: bool, first_reduction_prev: bool) -> None:
        _check_reductions(layers, reductions)
        self.aux_position = 2 * layers // 3
        self.cells = nn.ModuleList()
        c_pp, c_p, c_curr, reduction_prev = c_stem, c_stem, C, first_reduction_prev
        for i in range(layers):
            reduction = i in reductions
            if reduction:
                c_curr *= 2
            cell = Cell(genotype, c_pp, c_p, c_curr, reduction, reduction_prev, precision)
            self.cells.append(cell)
            reduction_prev = reduction
            c_pp, c_p = c_p, cell.multiplier * c_curr  # the concat may hold fewer than 4 nodes
            if i == self.aux_position:
                c_aux = c_p
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)
        self.auxiliary = AuxiliaryHead(c_aux, num_classes) if auxiliary else None
        self.drop_path_prob = 0.0

    @shares_signs
    def _forward_cells(self, s0: torch.Tensor, s1: torch.Tensor):
        logits_aux = None
        for k, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if k == self.aux_position and self.auxiliary is not None and self.training:
                logits_aux = self.auxiliary(s1)
        logits = self.classifier(torch.flatten(self.global_pooling(s1), 1))
        return logits, logits_aux


class NetworkCIFAR(_EvalNetwork):
    """The CIFAR evaluation network (§3.1): stem conv → ``layers`` cells → classifier.

    ``forward`` returns ``(logits, logits_aux)``; ``logits_aux`` is None in eval mode
    or without the auxiliary tower.
    """

    def __init__(self, genotype: Genotype, C: int = 56, num_classes: int = 10, layers: int = 10,
                 auxiliary: bool = True, precision: Precision = BINARY,
                 reductions: Sequence[int] | None = None) -> None:
        super().__init__()
        c_stem = STEM_MULTIPLIER * C
        self.stem = nn.Sequential(nn.Conv2d(3, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem))
        self._build_cells(genotype, c_stem, C, layers, default_reductions(layers) if reductions is None else reductions,
                          precision, num_classes, auxiliary, first_reduction_prev=False)

    def forward(self, x: torch.Tensor):
        s = self.stem(x)
        return self._forward_cells(s, s)


class NetworkImageNet(_EvalNetwork):
    """The ImageNet evaluation network (§3.1, DARTS): three stride-2 3×3 convs, 224 → 28."""

    def __init__(self, genotype: Genotype, C: int = 102, num_classes: int = 1000, layers: int = 10,
                 auxiliary: bool = True, precision: Precision = BINARY,
                 reductions: Sequence[int] | None = None) -> None:
        super().__init__()
        self.stem0 = nn.Sequential(
            nn.Conv2d(3, C // 2, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(C // 2), nn.ReLU(inplace=True),
            nn.Conv2d(C // 2, C, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(C))
        self.stem1 = nn.Sequential(
            nn.ReLU(inplace=True), nn.Conv2d(C, C, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(C))
        # cells: c_prev_prev = c_prev = C after the stems; the first cell's s0 comes
        # from stem0 at twice the resolution, hence a factorized reduce (reduction_prev).
        self._build_cells(genotype, C, C, layers, default_reductions(layers) if reductions is None else reductions,
                          precision, num_classes, auxiliary, first_reduction_prev=True)

    def forward(self, x: torch.Tensor):
        s0 = self.stem0(x)
        s1 = self.stem1(s0)
        return self._forward_cells(s0, s1)
