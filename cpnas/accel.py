"""Speed options of search and training: ``torch.compile`` (CPU and CUDA) and bf16 autocast (CUDA).

``--compile`` takes ``auto`` (the default), ``on`` or ``off``:

* ``on``: the evaluation network's training forward is compiled whole (one graph: the
  1-bit ops are traceable, see :mod:`cpnas.binary`); in a search, each candidate op of
  the supernet, each cell's input preprocessing and the stem are compiled separately,
  because the supernet's forward takes the sampled path as an argument and a compiled
  supernet would recompile for every draw. The number of graphs is bounded by the number
  of distinct signatures (:func:`compile_ops`).
* ``auto``: compiled only where ``make bench`` measured the compiled step faster on this
  machine at this thread count, and, for a run whose number of steps is known, only where
  the time it saves over those steps exceeds the compile time measured with it
  (:func:`pays_off`: a short run is not worth a compile). The verdict is a kernel form of
  :mod:`cpnas.dispatch` (op ``compile``, forms ``eager`` / ``compiled``, keys ``train`` /
  ``search``), cached per machine like the others, and the step and compile seconds
  beside it (:func:`remember_costs`); nothing measured means eager.
  ``CPNAS_FORMS=compile=compiled`` forces it.
* ``off``: eager.

The traced graph specializes on the Python values the forward reads: a drop-path probability
(``cifar.drop_path``, 0 in every preset) that changes each epoch would compile once per epoch.

Compiled code is cached under ``$CPNAS_CACHE/inductor`` (``TORCHINDUCTOR_CACHE_DIR``, unless
set), so a second run of the same network reuses it. Compile time and the number of graphs
are recorded with the options in a run's metadata (:func:`describe`). Evaluation stays eager:
it is a small part of a run, and compiling it would add graphs (BatchNorm in eval mode,
inference tensors) for little gain.

``--amp bf16`` runs forward passes and losses under ``torch.autocast("cuda", torch.bfloat16)``
on CUDA only (weights, optimizer state and the sign's straight-through gradient stay float32).

Options are runtime settings of this process, like the device: recorded in a run's
metadata but not part of its cache key, since they change float rounding only.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn

from cpnas.errors import CpnasError

log = logging.getLogger(__name__)

AMP_CHOICES = ("off", "bf16")
COMPILE_CHOICES = ("auto", "on", "off")
CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"


@dataclass(frozen=True)
class Acceleration:
    """What this process was asked for: ``amp`` (``off`` or ``bf16``) and ``compile`` (auto/on/off)."""

    amp: str = "off"
    compile: str = "auto"
    device: str = "cpu"


_current = Acceleration()
_used: dict[str, bool] = {}
_stats_before: dict[str, float] = {}


def configure(amp: str = "off", compile: str | bool = "auto", device: str | torch.device = "cpu") -> Acceleration:
    """Set this process's options for ``device``; bf16 is CUDA-only (ignored elsewhere, one log line)."""
    global _current
    if amp not in AMP_CHOICES:
        raise CpnasError(f"--amp must be one of {', '.join(AMP_CHOICES)}, got {amp!r}")
    if isinstance(compile, bool):
        compile = "on" if compile else "off"
    if compile not in COMPILE_CHOICES:
        raise CpnasError(f"--compile must be one of {', '.join(COMPILE_CHOICES)}, got {compile!r}")
    dev = torch.device(device) if not isinstance(device, torch.device) else device
    if dev.type != "cuda" and amp != "off":
        log.warning("--amp %s ignored on %s: bf16 autocast is CUDA-only", amp, dev)
        amp = "off"
    _current = Acceleration(amp=amp, compile=compile, device=dev.type)
    _used.clear()
    return _current


def current() -> Acceleration:
    return _current


def reset() -> None:
    """Back to the defaults: for tests and for a process that runs several jobs."""
    configure()


def compiling(kind: str, steps: int | None = None) -> bool:
    """Whether ``kind`` (``train`` or ``search``) runs compiled in this process (see the module doc);
    ``steps``: the number of steps the compiled network would run, when known."""
    if _current.compile != "auto":
        return _current.compile == "on"
    from cpnas import dispatch

    if dispatch.choose("compile", (kind, _current.device), None) != "compiled":
        return False
    if "compile" in dispatch.forced() or steps is None:
        return True
    worth = pays_off(kind, steps)
    return True if worth is None else worth


def _costs_path():
    from cpnas import dispatch

    path = dispatch.cache_path()
    return path.with_name(f"{path.stem}-compile-costs.json")


def _costs_key(kind: str, device: str) -> str:
    return f"{kind}|{device}|threads={torch.get_num_threads()}"


def remember_costs(kind: str, device: str, *, eager_step_s: float, compiled_step_s: float, compile_s: float) -> None:
    """Keep what ``make bench`` measured for ``kind`` at this thread count: a step eager and compiled, and the
    compile, in the machine's cache beside the kernel forms (read by :func:`pays_off`)."""
    from cpnas.io import read_json, write_json

    path = _costs_path()
    try:
        costs = read_json(path) if path.is_file() else {}
    except (OSError, ValueError, CpnasError):
        costs = {}
    costs[_costs_key(kind, device)] = {"eager_step_s": eager_step_s, "compiled_step_s": compiled_step_s,
                                       "compile_s": compile_s}
    write_json(path, costs)


def pays_off(kind: str, steps: int, device: str | None = None) -> bool | None:
    """Whether compiling ``kind`` for ``steps`` steps saves more than it costs, by the measured costs
    (:func:`remember_costs`) at this thread count: ``steps · (eager − compiled) > compile``. ``None``: not measured."""
    from cpnas.io import read_json

    path = _costs_path()
    try:
        cost = read_json(path).get(_costs_key(kind, device or _current.device)) if path.is_file() else None
    except (OSError, ValueError, AttributeError, CpnasError):  # an unreadable cache only costs the default
        return None
    if not isinstance(cost, dict):
        return None
    saved = steps * (cost["eager_step_s"] - cost["compiled_step_s"])
    worth = saved > cost["compile_s"]
    log.info("--compile auto: %s over %d steps saves %.0f s against a %.0f s compile: %s", kind, steps, saved,
             cost["compile_s"], "compiled" if worth else "eager")
    return worth


def use_cache_dir() -> str:
    """Point inductor's cache at ``$CPNAS_CACHE/inductor`` (unless the user set ``TORCHINDUCTOR_CACHE_DIR``); returns it.

    Importing ``torch._dynamo`` writes inductor's default (a folder under the system temp
    dir) into the variable, so a value equal to that default counts as unset.
    """
    given = os.environ.get(CACHE_ENV)  # read first: importing inductor may write it
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir as inductor_default

    if not given or os.path.abspath(given) == os.path.abspath(inductor_default()):
        from cpnas.paths import default_cache_dir

        os.environ[CACHE_ENV] = str(default_cache_dir() / "inductor")
    return os.environ[CACHE_ENV]


@contextlib.contextmanager
def autocast(device: torch.device) -> Iterator[None]:
    """``torch.autocast`` to bf16 around a forward pass and its loss, when ``--amp bf16`` is on for CUDA."""
    if _current.amp == "bf16" and device.type == "cuda":
        with torch.autocast("cuda", dtype=torch.bfloat16):
            yield
    else:
        yield


def bind_forms(model: nn.Module, example: torch.Tensor, forward: Callable[[nn.Module, torch.Tensor], Any] | None = None,
               paths: Sequence[Any] = ()) -> dict[str, str]:
    """Choose the kernel forms of ``model``'s dispatched convs once, for inputs shaped as ``example``.

    A traced graph cannot consult :mod:`cpnas.dispatch` on every call, so before compiling,
    one forward of a copy of ``model`` (``forward(net, x)``, or ``forward(net, x, path)`` for
    each of ``paths``) lets each dilated conv look its form up as eager would (measuring it
    if new); the forms are stored on ``model``'s modules (``dilated_form``), which the
    traced forward reads. Values and the global RNG are left untouched. Returns the forms by module.
    """
    from cpnas import fastconv

    probe = copy.deepcopy(model)
    found: dict[str, str] = {}
    handles = []
    for name, m in probe.named_modules():
        if hasattr(m, "dilated_form"):
            def hook(mod, args, name=name):
                form = fastconv.choose_form(args[0], mod.weight, mod.stride, mod.padding, mod.dilation, mod.groups)
                if form is not None:
                    found[name] = form
            handles.append(m.register_forward_pre_hook(hook))
    x = torch.zeros_like(example).normal_(generator=torch.Generator(device=example.device).manual_seed(0))
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        for path in (paths or [None]):
            args = (x,) if path is None else (x, path)
            forward(probe, *args) if forward is not None else probe(*args)
    for h in handles:
        h.remove()
    for name, m in model.named_modules():
        if name in found:
            m.dilated_form = found[name]
    return found


def compile_model(model: nn.Module, example: torch.Tensor | None = None, kind: str = "train",
                  steps: int | None = None) -> nn.Module:
    """``model`` compiled for training when :func:`compiling` says so (for ``steps`` steps), else ``model`` itself.

    The compiled module shares ``model``'s parameters and buffers (checkpoints keep writing
    ``model.state_dict()``); ``example`` (an input batch) binds the kernel forms first.
    """
    if not compiling(kind, steps):
        _used.setdefault(kind, False)
        return model
    _start()
    if example is not None:
        bind_forms(model, example)
    _used[kind] = True
    return torch.compile(model, dynamic=False)


def op_signature(op: nn.Module) -> tuple:
    """What makes two candidate ops trace to different graphs: their structure and parameter shapes."""
    return (repr(op), tuple(tuple(p.shape) for p in op.parameters()))


def example_input(shape: Sequence[int] | None, device: torch.device | str = "cpu",
                  memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor | None:
    """A tensor shaped and laid out as an input batch (values unset) to bind kernel forms with; ``None`` if no shape."""
    if shape is None:
        return None
    return torch.empty(tuple(shape), device=device).contiguous(memory_format=memory_format)


def every_op_paths(supernet: nn.Module) -> list:
    """Sampled paths that together run every candidate op (but ``none``) on every edge of ``supernet``'s cells.

    Path ``k`` puts op ``(e + k) mod K`` on edge ``e``, in both cell kinds, for the K ops that
    compute something: K paths, each op once per edge.
    """
    from cpnas.ops import PRIMITIVES
    from cpnas.space import SampledPath

    ops = [op for op in PRIMITIVES if op != "none"]
    n = max((len(getattr(cell, "edge_ops", ())) for cell in getattr(supernet, "cells", ())), default=0)
    rows = [tuple(ops[(e + k) % len(ops)] for e in range(n)) for k in range(len(ops))]
    return [SampledPath(row, row) for row in rows]


def compiled_parts(supernet: nn.Module) -> list[nn.Module]:
    """The modules of a search supernet that :func:`compile_ops` compiles: the stem, each cell's two
    input preprocessings and every candidate op, each the same computation whatever path is sampled."""
    parts = [supernet.stem] if isinstance(getattr(supernet, "stem", None), nn.Module) else []
    for cell in getattr(supernet, "cells", ()):
        parts += [m for m in (getattr(cell, "pre0", None), getattr(cell, "pre1", None)) if isinstance(m, nn.Module)]
        parts += [op for edge in getattr(cell, "edge_ops", ()) for op in edge.values()]
    return parts


def compile_ops(supernet: nn.Module, example: torch.Tensor | None = None, paths: Sequence[Any] | None = None,
                forward: Callable[..., Any] | None = None) -> nn.Module:
    """Compile the parts of a search supernet in place (:func:`compiled_parts`), when on.

    The supernet's own forward stays eager: it takes the sampled path as an argument, and a
    compiled supernet would recompile for every draw. Parts with the same structure and shapes
    share one graph; the recompile limit is raised to the number of distinct signatures, so
    that no part falls back to eager for hitting it (the number is bounded by the op set and
    the cell widths, and recorded by :func:`describe`).

    ``example`` (an input batch as the supernet gets it) binds the kernel forms first
    (:func:`bind_forms`), through ``forward(net, x)`` when given (PC-DARTS' mixed forward), else
    ``net(x, path)`` for each of ``paths`` (default :func:`every_op_paths`: every op runs once).
    """
    if not compiling("search"):
        _used.setdefault("search", False)
        return supernet
    _start()
    if example is not None:
        if forward is None and paths is None:
            paths = every_op_paths(supernet)
        bind_forms(supernet, example, forward=forward, paths=() if forward is not None else paths)
    parts = compiled_parts(supernet)
    distinct = len({op_signature(op) for op in parts})
    # per signature: training and no-grad (scoring, BN recalibration) graphs, each in train or eval mode
    limit = 4 * distinct
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, limit)
    torch._dynamo.config.accumulated_recompile_limit = max(torch._dynamo.config.accumulated_recompile_limit, limit)
    for op in parts:
        op.compile(dynamic=False)
    _used["search"] = True
    _used["search_signatures"] = distinct
    return supernet


def _totals() -> dict[str, float]:
    """This process's running totals: graphs made and seconds compiling (Dynamo tracing, backward graphs)."""
    from torch._dynamo.utils import compilation_time_metrics, counters

    return {"graphs": counters["stats"]["unique_graphs"],
            "dynamo_s": sum(compilation_time_metrics.get("_compile.compile_inner", [])),
            "backward_s": sum(compilation_time_metrics.get("compile_fx.<locals>.bw_compiler", []))}


def _start() -> None:
    """Mark where the current configuration's compiling began (:func:`configure` starts a new one)."""
    use_cache_dir()
    if not any(v is True for v in _used.values()):
        _stats_before.clear()
        _stats_before.update(_totals())


def compile_stats() -> dict[str, Any]:
    """Graphs made and seconds spent compiling since the current configuration's first compile.

    A process that trains several networks (``configure`` before each) records each one's own
    share; a network whose graph Dynamo already holds (same code, guards met) adds none.
    """
    from cpnas.paths import portable

    now = _totals()
    return {"graphs": int(now["graphs"] - _stats_before.get("graphs", 0)),
            "dynamo_s": round(now["dynamo_s"] - _stats_before.get("dynamo_s", 0.0), 2),
            "backward_s": round(now["backward_s"] - _stats_before.get("backward_s", 0.0), 2),
            "cache_dir": portable(os.environ.get(CACHE_ENV))}


def describe() -> dict[str, Any]:
    """The options and what they did, as recorded in a run's metadata (``compiled``: which parts ran compiled)."""
    out: dict[str, Any] = {"amp": _current.amp, "compile": _current.compile,
                           "compiled": {k: v for k, v in _used.items() if isinstance(v, bool)}}
    if any(v is True for v in _used.values()):
        out["compile_stats"] = compile_stats()
        if "search_signatures" in _used:
            out["compile_stats"]["op_signatures"] = _used["search_signatures"]
    return out
