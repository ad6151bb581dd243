"""Efficiency accounting (§3.4, Table 3): parameters, memory bits, MACs and FLOPs.

Everything is *measured* on a built network, never computed from per-architecture
formulas: :func:`profile` runs one forward pass of a dummy input with a forward
hook on every module, reads the output shape each conv / linear layer actually
produced, and attributes the parameters of every module that ran.

Conventions (the paper's, §3.4 and Table 3):

* **Binary vs real.** A :class:`~cpnas.binary.BinaryConv2d` (``isinstance``
  check) has 1-bit weights; every other parameter (plain convs, the classifier,
  BN affine parameters, any bias) is real. BN running statistics are buffers,
  not parameters, and are not counted (they fold into the BN affine at
  inference).
* **Memory** in bits = 32 · real params + 1 · binary params (``memory_mbit`` =
  bits / 10⁶). The per-channel scale α of a binary conv is computed from the
  latent weights and folds into the following BN at inference, so it is not
  stored separately.
* **MACs.** Only convolutions and linear layers count (conv: output elements ×
  (c_in / groups) × k_h × k_w; linear: output elements × in_features), per
  sample. BN, pooling, ReLU and residual / node additions are element-wise and
  are ignored, as in the paper's convention. A MAC of a BinaryConv2d with
  1-bit inputs is a *binary* MAC (an XNOR-popcount); every other MAC is real.
* **BinaryConv2d with ``binarize_input=False``** (Table 2's ``*``/``**``
  variants): its weights are 1-bit (memory: 1 bit each) but its inputs are 32-bit,
  so its products are 1-bit × 32-bit — additions and subtractions of real values,
  not XNOR-popcounts that pack 64 products in a word. We count its MACs as
  **real** MACs (the honest, conservative choice) and its weights as binary;
  such layers show ``kind = "binary-weight"`` in the per-layer rows.
* **FLOPs** (Table 3's "FLOPs (M)") = real MACs + binary MACs / 64, the
  convention of Bi-Real Net (Liu et al., ECCV 2018, §4.4: "the FLOPs … is the
  sum of BOPs/64 and FLOPs") following XNOR-Net (Rastegari et al., ECCV 2016,
  §3.2: a 64-bit CPU does 64 binary operations per instruction, whence its
  "58× speedup").
* **Memory saving** = bits(WRN-22) / bits(ours); **speedup** = FLOPs(WRN-22) /
  FLOPs(ours), against the full-precision WRN-22 of :mod:`cpnas.wrn`.
* **What runs is what counts.** Modules that do not run in the forward pass are
  not counted: a :class:`~cpnas.networks.SearchNetwork` profiled on a
  :class:`~cpnas.space.SampledPath` counts the sampled sub-network, and the auxiliary
  tower of the evaluation networks (training only, never at inference) is left
  out by default, as DARTS leaves it out of its parameter counts.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import torch
from torch import nn

from cpnas.binary import BinaryConv2d, get_precision
from cpnas.config import Config, get_config
from cpnas.errors import CpnasError
from cpnas.genotype import Genotype

log = logging.getLogger(__name__)

BITS_REAL = 32
"""A full-precision parameter is stored in 32 bits (§3.2: 'the full-precision networks need 32')."""
BITS_BINARY = 1
"""A binarized parameter needs 1 bit (§3.2)."""
BINARY_OPS_PER_FLOP = 64
"""Binary MACs per FLOP: a 64-bit word holds 64 XNOR-popcount products (XNOR-Net §3.2; Bi-Real Net §4.4)."""

BASELINE_DATASET = "cifar10"
"""The dataset of Table 3's baselines (:data:`cpnas.wrn.WRN_ARCHS`): WRN-22 is a CIFAR-10 network."""

SIZES = ("small", "medium", "large")
"""§3.1: three CIFAR model sizes, C = 56 / 72 / 112."""

_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


@dataclass(frozen=True)
class LayerCount:
    """Counts of one module that ran in the forward pass.

    ``kind``: ``binary`` (1-bit weights and inputs), ``binary-weight`` (1-bit
    weights, real inputs), ``real`` (conv / linear), ``norm`` (BN and friends) or
    ``other`` (a parameterised module without a MAC rule; its params are counted).
    MACs are per sample and summed over calls (a module called twice counts twice).
    """

    name: str
    type: str
    kind: str
    params: int
    binary_params: int
    real_params: int
    real_macs: int
    binary_macs: int
    calls: int
    output_shape: tuple[int, ...]

    @property
    def memory_bits(self) -> int:
        return BITS_REAL * self.real_params + BITS_BINARY * self.binary_params


@dataclass(frozen=True)
class Profile:
    """Per-layer counts and totals of one network (see the module docstring for conventions)."""

    layers: tuple[LayerCount, ...]
    input_size: tuple[int, ...]
    name: str = ""
    include_norm: bool = True
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def params(self) -> int:
        return sum(r.params for r in self.layers)

    @property
    def binary_params(self) -> int:
        return sum(r.binary_params for r in self.layers)

    @property
    def real_params(self) -> int:
        return sum(r.real_params for r in self.layers)

    @property
    def memory_bits(self) -> int:
        """32 · real params + 1 · binary params."""
        return BITS_REAL * self.real_params + BITS_BINARY * self.binary_params

    @property
    def memory_mbit(self) -> float:
        return self.memory_bits / 1e6

    @property
    def real_macs(self) -> int:
        return sum(r.real_macs for r in self.layers)

    @property
    def binary_macs(self) -> int:
        return sum(r.binary_macs for r in self.layers)

    @property
    def flops(self) -> float:
        """Real MACs + binary MACs / 64 (Table 3's "FLOPs")."""
        return self.real_macs + self.binary_macs / BINARY_OPS_PER_FLOP

    @property
    def flops_m(self) -> float:
        return self.flops / 1e6

    @property
    def params_m(self) -> float:
        return self.params / 1e6

    def without_norm(self) -> "Profile":
        """The same profile with the normalisation layers' parameters left out (``include_norm=False``)."""
        return dataclasses.replace(self, layers=tuple(r for r in self.layers if r.kind != "norm"),
                                   include_norm=False)

    def memory_saving(self, reference: "Profile | None" = None) -> float:
        """bits(reference) / bits(self); the reference defaults to full-precision WRN-22.

        The default reference is counted with the same ``include_norm`` convention.
        """
        reference = reference or wrn22_reference(self.include_norm)
        return reference.memory_bits / self.memory_bits

    def speedup(self, reference: "Profile | None" = None) -> float:
        """FLOPs(reference) / FLOPs(self); the reference defaults to full-precision WRN-22."""
        reference = reference or wrn22_reference(self.include_norm)
        return reference.flops / self.flops

    def summary(self, reference: "Profile | None" = None) -> dict[str, Any]:
        """The totals as a flat, JSON-ready dict (with saving and speedup vs ``reference``)."""
        return {
            "name": self.name,
            "input_size": list(self.input_size),
            "params": self.params,
            "binary_params": self.binary_params,
            "real_params": self.real_params,
            "memory_bits": self.memory_bits,
            "memory_mbit": round(self.memory_mbit, 4),
            "real_macs": self.real_macs,
            "binary_macs": self.binary_macs,
            "flops_m": round(self.flops_m, 4),
            "memory_saving": round(self.memory_saving(reference), 4),
            "speedup": round(self.speedup(reference), 4),
            "include_norm": self.include_norm,
            **self.meta,
        }

    def to_frame(self):
        """One row per counted module (a ``pandas.DataFrame``)."""
        import pandas as pd

        rows = [{**asdict(r), "memory_bits": r.memory_bits} for r in self.layers]
        cols = ["name", "type", "kind", "params", "binary_params", "real_params", "memory_bits",
                "real_macs", "binary_macs", "calls", "output_shape"]
        return pd.DataFrame(rows, columns=cols)

    def grouped(self, depth: int = 2):
        """Rows summed by the first ``depth`` components of the module name (0 = every layer).

        ``depth=2`` gives one row per stem / cell / block group, e.g. ``cells.3``.
        A final ``total`` row holds the network totals.
        """
        import pandas as pd

        df = self.to_frame()
        num = ["params", "binary_params", "real_params", "memory_bits", "real_macs", "binary_macs"]
        if depth > 0:
            key = df["name"].map(lambda n: ".".join(n.split(".")[:depth]))
            df = df.assign(name=key).groupby("name", sort=False, as_index=False)[num].sum()
        else:
            df = df[["name", "type", "kind", *num]]
        total = {c: df[c].sum() for c in num}
        df = pd.concat([df, pd.DataFrame([{"name": "total", **total}])], ignore_index=True)
        df["flops_m"] = (df["real_macs"] + df["binary_macs"] / BINARY_OPS_PER_FLOP) / 1e6
        return df.fillna("")


def _conv_macs(m: nn.modules.conv._ConvNd, out: torch.Tensor) -> int:
    per_out = (m.in_channels // m.groups) * math.prod(m.kernel_size)
    return (out.numel() // out.shape[0]) * per_out


def _linear_macs(m: nn.Linear, out: torch.Tensor) -> int:
    return (out.numel() // out.shape[0]) * m.in_features


def _classify(module: nn.Module) -> str:
    if isinstance(module, BinaryConv2d):
        return "binary" if module.binarize_input else "binary-weight"
    if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)):
        return "real"
    if isinstance(module, _NORM_TYPES):
        return "norm"
    return "other"


def profile(model: nn.Module, input_size: Sequence[int] = (3, 32, 32), forward_args: Sequence[Any] = (), *,
            include_auxiliary: bool = False, include_norm: bool = True, name: str = "",
            meta: dict[str, Any] | None = None) -> Profile:
    """Count parameters, memory bits, real and binary MACs of ``model`` (§3.4, Table 3).

    Runs ``model(x, *forward_args)`` once on a zero input of shape
    ``(batch, *input_size)`` with hooks on every module, in eval mode (so the
    auxiliary tower does not run). ``include_auxiliary=True`` profiles a copy in
    training mode instead, on a batch of 2, which runs the tower too (tensors in
    ``forward_args`` must then have a batch of 2 as well). ``include_norm=False`` leaves
    the BN parameters out of the counts (the paper's WRN-22 memory, 138.27 Mbit =
    4.321 M × 32, appears to leave them out). The model itself is left unchanged.

    The model may live on the ``meta`` device (as the builders below make it):
    only shapes flow, so even the ImageNet network profiles in about a second
    on a CPU. Hooks were chosen over ``torch.utils.flop_counter.FlopCounterMode``:
    that counts per aten op (2 FLOPs per MAC) and would need module-name matching
    to tell a BinaryConv2d's ``conv2d`` from a real one; the tests cross-check
    our totals against it.
    """
    if include_auxiliary:
        model = copy.deepcopy(model).train()
        batch = 2  # BN in training mode needs more than one value per channel
    else:
        batch = 1
    was_training = {m: m.training for m in model.modules()}
    counts: dict[str, dict[str, Any]] = {}
    handles = []

    def hook(mod_name: str):
        def fn(module: nn.Module, inputs: Any, output: Any) -> None:
            out = output[0] if isinstance(output, (tuple, list)) else output
            c = counts.setdefault(mod_name, {"macs": 0, "calls": 0, "shape": ()})
            c["calls"] += 1
            c["shape"] = tuple(out.shape[1:]) if isinstance(out, torch.Tensor) else ()
            if isinstance(module, nn.modules.conv._ConvNd):
                c["macs"] += _conv_macs(module, out)
            elif isinstance(module, nn.Linear):
                c["macs"] += _linear_macs(module, out)
        return fn

    modules = {}
    for mod_name, module in model.named_modules():
        if not include_auxiliary and (mod_name == "auxiliary" or mod_name.startswith("auxiliary.")):
            continue
        kind = _classify(module)
        has_params = any(True for _ in module.parameters(recurse=False))
        if kind == "other" and not has_params:
            continue
        if kind == "norm" and not include_norm:
            continue
        modules[mod_name] = (module, kind)
        handles.append(module.register_forward_hook(hook(mod_name)))
    try:
        if not include_auxiliary:
            model.eval()
        try:
            ref = next(model.parameters())
            device, dtype = ref.device, ref.dtype
        except StopIteration:
            device, dtype = torch.device("cpu"), torch.float32
        x = torch.zeros(batch, *input_size, device=device, dtype=dtype)
        with torch.no_grad():
            model(x, *forward_args)
    finally:
        for h in handles:
            h.remove()
        for m, flag in was_training.items():
            m.train(flag)

    rows = []
    seen: set[int] = set()  # a parameter shared by two modules is stored once
    for mod_name, (module, kind) in modules.items():
        if mod_name not in counts:
            continue  # did not run: an unsampled op of the supernet, the auxiliary tower, …
        c = counts[mod_name]
        binary_params = real_params = 0
        for pname, p in module.named_parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            if kind in ("binary", "binary-weight") and pname == "weight":
                binary_params += p.numel()
            else:
                real_params += p.numel()
        macs = c["macs"]  # already per sample (see _conv_macs / _linear_macs)
        if kind == "other" and macs == 0:
            log.debug("no MAC rule for %s (%s); counting its parameters only", mod_name, type(module).__name__)
        rows.append(LayerCount(
            name=mod_name or type(module).__name__, type=type(module).__name__, kind=kind,
            params=binary_params + real_params, binary_params=binary_params, real_params=real_params,
            real_macs=0 if kind == "binary" else macs, binary_macs=macs if kind == "binary" else 0,
            calls=c["calls"], output_shape=c["shape"]))
    return Profile(tuple(rows), tuple(input_size), name=name, include_norm=include_norm, meta=dict(meta or {}))


# --- the networks of Table 3 -------------------------------------------------

@functools.lru_cache(maxsize=None)
def profile_arch(arch: str, include_norm: bool = True) -> Profile:
    """Profile a named baseline of :data:`cpnas.wrn.WRN_ARCHS` (``wrn22``, ``wrn22-binary``, …) on 32×32 inputs."""
    from cpnas.wrn import WRN_ARCHS

    try:
        build = WRN_ARCHS[arch]
    except KeyError:
        raise CpnasError(f"unknown architecture {arch!r}; choose one of {', '.join(WRN_ARCHS)}") from None
    from cpnas.data import train_config

    size = train_config(get_config("paper"), BASELINE_DATASET).image_size
    with torch.device("meta"):  # shapes only: no weight init, no arithmetic
        model = build()
    return profile(model, (3, size, size), include_norm=include_norm, name=arch,
                   meta={"arch": arch, "dataset": BASELINE_DATASET})


def wrn22_reference(include_norm: bool = True) -> Profile:
    """The full-precision WRN-22 every memory saving and speedup is relative to (Table 3, row 1)."""
    return profile_arch("wrn22", include_norm)


def profile_genotype(genotype: Genotype, *, dataset: str = BASELINE_DATASET, size: str = "small",
                     channels: int | None = None, layers: int | None = None, precision: str = "binary",
                     config: Config | None = None, include_norm: bool = True, name: str = "") -> Profile:
    """Profile the evaluation network of ``genotype`` (§3.1), by default at the paper's sizes.

    The dataset's registry entry (:mod:`cpnas.data.registry`) gives the network,
    the config section and the class count: ``cifar10`` builds
    :class:`~cpnas.networks.NetworkCIFAR` (C from ``size``: 56 / 72 / 112, 10
    cells, 10 classes), ``imagenet`` builds :class:`~cpnas.networks.NetworkImageNet`
    (C = 102, 10 cells, 224×224, 1000 classes, Table 2). ``channels`` and ``layers``
    override the config. The analytic profile does not train anything, so the full
    paper size runs on any machine.
    """
    from cpnas.data import get_dataset

    spec = get_dataset(dataset)
    if spec.num_classes is None:
        raise CpnasError(f"dataset {dataset!r} registers no class count (num_classes); the analytic profile "
                         f"needs one")
    if size not in SIZES:
        raise CpnasError(f"unknown size {size!r}; choose one of {', '.join(SIZES)}")
    cfg = config or get_config("paper")
    train_cfg = spec.train_config(cfg)
    C = channels if channels is not None else getattr(train_cfg, f"channels_{size}")
    L = layers if layers is not None else train_cfg.layers
    if C < 1 or L < 1:
        raise CpnasError(f"channels and layers must be positive, got channels={C}, layers={L}")
    prec = get_precision(precision)
    net_cls = spec.network_class()
    num_classes = spec.num_classes
    try:
        with torch.device("meta"):  # shapes only: no weight init, no arithmetic
            model = net_cls(genotype, C=C, num_classes=num_classes, layers=L, auxiliary=True, precision=prec)
    except ValueError as exc:  # e.g. FactorizedReduce needs an even channel count
        raise CpnasError(f"cannot build a {dataset} network with channels={C}, layers={L}: {exc}") from None
    s = train_cfg.image_size
    return profile(model, (3, s, s), include_norm=include_norm, name=name or f"{dataset}-C{C}-L{L}-{prec.name}",
                   meta={"dataset": dataset, "channels": C, "layers": L, "precision": prec.name})


PAPER_PARAMS_M = {"small": 2.9, "medium": 4.4, "large": 10.6}
"""Table 1's parameter counts of CP-NAS (Small / Medium / Large), as printed (M)."""


def final_cell_readings(search_outs) -> "Any":
    """Params at the paper's sizes of the cells finished CP-NAS/BNAS searches give under both ⚑ readings.

    For every search folder with an ``indicator.json``: ``keep_all`` (every edge keeps
    the one op left in its pool, ``none`` = no edge) and ``top2`` (DARTS: each node
    keeps its two best non-``none`` incoming edges, ranked by the mean z̄ of the op
    left on them in the last round). One row per (search, reading) with params (M)
    of the 1-bit evaluation network at C = 56 / 72 / 112 (Table 1's sizes) and the
    edges kept; compare with :data:`PAPER_PARAMS_M`. Nothing is trained.
    """
    from pathlib import Path

    import pandas as pd

    from cpnas.genotype import genotype_from_ops, top2_genotype
    from cpnas.io import read_json
    from cpnas.runs.files import INDICATOR
    from cpnas.paths import portable

    rows = []
    for out in map(Path, search_outs):
        if not (out / INDICATOR).exists():
            continue
        last = read_json(out / INDICATOR)["rounds"][-1]
        kept, score = {}, {}
        for kind in ("normal", "reduce"):
            kept[kind] = [next(op for op in zbar if op != last["removed"][kind][e])
                          for e, zbar in enumerate(last["mean_z"][kind])]
            score[kind] = [last["mean_z"][kind][e][op] for e, op in enumerate(kept[kind])]
        readings = {"keep_all": genotype_from_ops(kept["normal"], kept["reduce"]),
                    "top2": top2_genotype(kept["normal"], kept["reduce"], score["normal"], score["reduce"], 4)}
        for reading, g in readings.items():
            row = {"search": portable(out), "reading": reading, "edges_normal": len(g.normal),
                   "edges_reduce": len(g.reduce)}
            for size in PAPER_PARAMS_M:
                row[f"params_m_{size}"] = profile_genotype(g, size=size).params_m
            rows.append(row)
    return pd.DataFrame(rows)
