"""CUDA speed options of search and training (issue 14 §3): bf16 autocast and ``torch.compile``.

Both are **off by default and always off on CPU**: on our 2-core CPU ``torch.compile`` was
measured slower than eager for these nets, and bf16 has no fast path there. On CUDA:

* ``--amp bf16`` runs forward passes and losses under ``torch.autocast("cuda", torch.bfloat16)``
  (weights, optimizer state and the 1-bit sign's straight-through gradient stay float32; bf16
  has float32's exponent range, so no loss scaling is needed);
* ``--compile`` compiles in place with ``nn.Module.compile`` (the state-dict keys, hence the
  checkpoints, stay those of the eager module): the whole evaluation network of a training;
  in a search, each candidate op of the supernet separately, because the supernet's forward
  takes the sampled path as an argument and a compiled supernet would recompile for every draw.

The options are runtime settings of this process, like the device: they are recorded in a
run's metadata (:func:`describe`) but are not part of its cache key, since they change float
rounding only. Nothing here has been measured on a GPU yet (no GPU lent since it was written);
``tools/device_check.py`` is the script that would measure the 1-bit/32-bit step ratio with them.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import asdict, dataclass
from typing import Any, Iterator

import torch
from torch import nn

from cpnas.errors import CpnasError

log = logging.getLogger(__name__)

AMP_CHOICES = ("off", "bf16")


@dataclass(frozen=True)
class Acceleration:
    """What this process uses: ``amp`` (``off`` or ``bf16``) and ``compile``."""

    amp: str = "off"
    compile: bool = False


_current = Acceleration()


def configure(amp: str = "off", compile: bool = False, device: str | torch.device = "cpu") -> Acceleration:
    """Set this process's options for ``device``; on anything but CUDA they stay off (one log line says so)."""
    global _current
    if amp not in AMP_CHOICES:
        raise CpnasError(f"--amp must be one of {', '.join(AMP_CHOICES)}, got {amp!r}")
    dev = torch.device(device) if not isinstance(device, torch.device) else device
    wanted = Acceleration(amp=amp, compile=bool(compile))
    if dev.type != "cuda" and wanted != Acceleration():
        log.warning("--amp %s / --compile %s ignored on %s: both are CUDA-only (off on CPU)", amp, compile, dev)
        wanted = Acceleration()
    _current = wanted
    return _current


def current() -> Acceleration:
    return _current


def reset() -> None:
    """Back to the defaults (off): for tests and for a process that runs several jobs."""
    configure()


@contextlib.contextmanager
def autocast(device: torch.device) -> Iterator[None]:
    """``torch.autocast`` to bf16 around a forward pass and its loss, when ``--amp bf16`` is on for CUDA."""
    if _current.amp == "bf16" and device.type == "cuda":
        with torch.autocast("cuda", dtype=torch.bfloat16):
            yield
    else:
        yield


def compile_model(model: nn.Module) -> nn.Module:
    """Compile ``model`` in place (``nn.Module.compile``) when ``--compile`` is on; returns it."""
    if _current.compile:
        model.compile()
    return model


def compile_ops(supernet: nn.Module) -> nn.Module:
    """Compile every candidate op of a search supernet in place (its cells' ``edge_ops``), when on."""
    if _current.compile:
        for cell in getattr(supernet, "cells", ()):
            for ops in getattr(cell, "edge_ops", ()):
                for op in ops.values():
                    op.compile()
    return supernet


def describe() -> dict[str, Any]:
    """The options as recorded in a run's metadata."""
    return asdict(_current)
